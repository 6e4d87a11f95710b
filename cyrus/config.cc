#include "cyrus/config.h"

#include <cctype>
#include <utility>
#include <vector>

namespace cyrsync::cyrus {
namespace internal {
namespace {

// One "key: value" line, with where it came from for error messages.
struct ConfLine {
  std::string key;  // lower-cased
  std::string value;
  std::string source;
  int line = 0;
};

constexpr int kMaxIncludeDepth = 8;

std::string LineRef(std::string_view source, int line) {
  return std::string(source) + ": line " + std::to_string(line);
}

bool IsKeyChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Parses one non-comment line as Cyrus's config_read_file does: a key of [A-Za-z0-9_-] (or
// "@include"), ':', a non-empty value with surrounding whitespace removed. '#' is only a
// comment at the start of a line.
Result<ConfLine> ParseLine(std::string_view text, std::string_view source, int line) {
  size_t n = text.rfind("@include", 0) == 0 ? 8 : 0;
  while (n < text.size() && IsKeyChar(text[n])) ++n;
  if (n == 0 || n >= text.size() || text[n] != ':') {
    return InvalidArgumentError(LineRef(source, line) + ": invalid option name");
  }
  ConfLine out;
  out.key.reserve(n);
  for (char c : text.substr(0, n)) {
    out.key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  out.value = std::string(TrimSpace(text.substr(n + 1)));
  if (out.value.empty()) {
    return InvalidArgumentError(LineRef(source, line) + ": empty value for " + out.key);
  }
  out.source = std::string(source);
  out.line = line;
  return out;
}

Result<std::vector<ConfLine>> SplitLines(std::string_view text, std::string_view source) {
  std::vector<ConfLine> lines;
  int lineno = 0;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view raw = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    ++lineno;
    std::string_view s = TrimSpace(raw);
    if (s.empty() || s.front() == '#') continue;
    ASSIGN_OR_RETURN(ConfLine l, ParseLine(s, source, lineno));
    lines.push_back(std::move(l));
  }
  return lines;
}

// Cyrus accepts a switch by its first byte(s): 1/y/t/on -> true, 0/n/f/off -> false.
Result<bool> ParseSwitch(const ConfLine& l) {
  std::string_view v = l.value;
  if (v[0] == '1' || v[0] == 'y' || v[0] == 't' || v.rfind("on", 0) == 0) return true;
  if (v[0] == '0' || v[0] == 'n' || v[0] == 'f' || v.rfind("of", 0) == 0) return false;
  return InvalidArgumentError(LineRef(l.source, l.line) + ": not a yes/no value for " + l.key);
}

Result<std::string> ParseVirtdomains(const ConfLine& l) {
  if (l.value == "off" || l.value == "userid" || l.value == "on") return l.value;
  auto sw = ParseSwitch(l);
  if (!sw.ok()) {
    return InvalidArgumentError(LineRef(l.source, l.line) + ": invalid value for virtdomains");
  }
  return std::string(*sw ? "on" : "off");
}

Result<std::set<std::string>> ParseMetaFiles(const ConfLine& l) {
  static const std::set<std::string, std::less<>> kAllowed = {
      "header", "index", "cache", "expunge", "squat", "annotations", "lock", "dav", "archivecache"};
  std::set<std::string> out;
  std::string_view v = l.value;
  while (!(v = TrimSpace(v)).empty()) {
    size_t end = 0;
    while (end < v.size() && !std::isspace(static_cast<unsigned char>(v[end]))) ++end;
    std::string word(v.substr(0, end));
    if (!kAllowed.contains(word)) {
      return InvalidArgumentError(LineRef(l.source, l.line) + ": invalid metapartition_files '" +
                                  word + "'");
    }
    out.insert(std::move(word));
    v.remove_prefix(end);
  }
  return out;
}

bool StripPrefix(std::string_view* s, std::string_view prefix) {
  if (s->rfind(prefix, 0) != 0) return false;
  s->remove_prefix(prefix.size());
  return true;
}

// Partition-style keys "<kind>-<name>" go to their maps; returns true when consumed.
bool ApplyPartitionKey(ImapdConf* conf, const ConfLine& l) {
  std::string_view k = l.key;
  if (StripPrefix(&k, "partition-")) {
    conf->partitions[std::string(k)] = l.value;
  } else if (StripPrefix(&k, "metapartition-")) {
    conf->metapartitions[std::string(k)] = l.value;
  } else if (StripPrefix(&k, "archivepartition-")) {
    conf->archivepartitions[std::string(k)] = l.value;
  } else {
    return false;
  }
  return !k.empty();
}

Status ApplySwitch(ImapdConf* conf, const ConfLine& l) {
  static const std::pair<const char*, bool ImapdConf::*> kSwitches[] = {
      {"hashimapspool", &ImapdConf::hashimapspool},
      {"fulldirhash", &ImapdConf::fulldirhash},
      {"unixhierarchysep", &ImapdConf::unixhierarchysep},
      {"altnamespace", &ImapdConf::altnamespace},
      {"mailbox_legacy_dirs", &ImapdConf::mailbox_legacy_dirs},
      {"archive_enabled", &ImapdConf::archive_enabled},
  };
  for (const auto& [name, member] : kSwitches) {
    if (l.key != name) continue;
    ASSIGN_OR_RETURN(conf->*member, ParseSwitch(l));
  }
  return Status::Ok();
}

void ApplyString(ImapdConf* conf, const ConfLine& l) {
  static const std::pair<const char*, std::string ImapdConf::*> kStrings[] = {
      {"configdirectory", &ImapdConf::configdirectory},
      {"defaultpartition", &ImapdConf::defaultpartition},
      {"sievedir", &ImapdConf::sievedir},
      {"mboxname_lockpath", &ImapdConf::lockpath},
      {"mboxlist_db_path", &ImapdConf::mboxlist_db_path},
      {"mboxlist_db", &ImapdConf::mboxlist_db},
      {"seenstate_db", &ImapdConf::seenstate_db},
      {"subscription_db", &ImapdConf::subscription_db},
      {"quota_db", &ImapdConf::quota_db},
      {"defaultdomain", &ImapdConf::defaultdomain},
      {"deletedprefix", &ImapdConf::deletedprefix},
  };
  for (const auto& [name, member] : kStrings) {
    if (l.key == name) conf->*member = l.value;
  }
}

Status ApplyLine(ImapdConf* conf, const ConfLine& l) {
  if (ApplyPartitionKey(conf, l)) return Status::Ok();
  if (l.key == "virtdomains") {
    ASSIGN_OR_RETURN(conf->virtdomains, ParseVirtdomains(l));
    return Status::Ok();
  }
  if (l.key == "metapartition_files") {
    ASSIGN_OR_RETURN(conf->metapartition_files, ParseMetaFiles(l));
    return Status::Ok();
  }
  RETURN_IF_ERROR(ApplySwitch(conf, l));
  ApplyString(conf, l);
  return Status::Ok();
}

Result<ImapdConf> BuildConf(const std::vector<ConfLine>& lines, std::string source_path) {
  ImapdConf conf;
  conf.source_path = std::move(source_path);
  for (const ConfLine& l : lines) {
    if (!conf.raw.emplace(l.key, l.value).second) {
      return InvalidArgumentError(LineRef(l.source, l.line) + ": option " + l.key +
                                  " specified twice");
    }
    RETURN_IF_ERROR(ApplyLine(&conf, l));
  }
  if (conf.configdirectory.empty()) {
    return InvalidArgumentError(conf.source_path + ": configdirectory is not set");
  }
  if (conf.lockpath.empty()) conf.lockpath = JoinPath(conf.configdirectory, "lock");
  if (conf.mboxlist_db_path.empty()) {
    conf.mboxlist_db_path = JoinPath(conf.configdirectory, "mailboxes.db");
  }
  return conf;
}

// Reads path and splices in "@include: file" lines in place (relative to path's directory).
Status CollectLines(Env* env, const std::string& path, int depth, std::vector<ConfLine>* out) {
  if (depth > kMaxIncludeDepth) return InvalidArgumentError(path + ": @include nested too deep");
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(env, path));
  ASSIGN_OR_RETURN(std::vector<ConfLine> lines, SplitLines(text, path));
  for (ConfLine& l : lines) {
    if (l.key != "@include") {
      out->push_back(std::move(l));
      continue;
    }
    std::string inc = l.value[0] == '/' ? l.value : JoinPath(Dirname(path), l.value);
    RETURN_IF_ERROR(CollectLines(env, inc, depth + 1, out));
  }
  return Status::Ok();
}

}  // namespace
}  // namespace internal

std::string ImapdConf::Get(std::string_view key, std::string_view def) const {
  auto it = raw.find(std::string(key));
  return it == raw.end() ? std::string(def) : it->second;
}

Result<std::string> ImapdConf::RootDir(std::string_view root_id) const {
  auto lookup = [&](const std::map<std::string, std::string>& m,
                    std::string_view name) -> Result<std::string> {
    auto it = m.find(std::string(name));
    if (it == m.end() || it->second.empty()) {
      return NotFoundError(source_path + ": no " + std::string(root_id));
    }
    return it->second;
  };
  std::string_view id = root_id;
  if (id == "configdirectory") return configdirectory;
  if (id == "sievedir") {
    if (sievedir.empty()) return NotFoundError(source_path + ": no sievedir");
    return sievedir;
  }
  if (internal::StripPrefix(&id, "partition-")) return lookup(partitions, id);
  if (internal::StripPrefix(&id, "metapartition-")) return lookup(metapartitions, id);
  if (internal::StripPrefix(&id, "archivepartition-")) return lookup(archivepartitions, id);
  if (id.rfind("metadir-", 0) == 0) return lookup(raw, root_id);
  return InvalidArgumentError("unknown root id '" + std::string(root_id) + "'");
}

Result<ImapdConf> ParseImapdConf(std::string_view text, std::string source_path) {
  ASSIGN_OR_RETURN(auto lines, internal::SplitLines(text, source_path));
  for (const auto& l : lines) {
    if (l.key == "@include") {
      return InvalidArgumentError(internal::LineRef(source_path, l.line) +
                                  ": @include needs LoadImapdConf");
    }
  }
  return internal::BuildConf(lines, std::move(source_path));
}

Result<ImapdConf> LoadImapdConf(Env* env, const std::string& path) {
  std::vector<internal::ConfLine> lines;
  RETURN_IF_ERROR(internal::CollectLines(env, path, 0, &lines));
  return internal::BuildConf(lines, path);
}

}  // namespace cyrsync::cyrus
