#include "snapshot/guid_map.h"

#include <algorithm>
#include <charconv>

namespace cyrsync::snapshot {
namespace {

constexpr std::string_view kMagic = "cyrsync-guids 1";

bool IsSha1Hex(std::string_view s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool ParseU32(std::string_view s, uint32_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

}  // namespace

std::string EncodeGuidMap(const GuidMap& m) {
  std::string out(kMagic);
  out += "\nuidvalidity " + std::to_string(m.uidvalidity) + "\n";
  for (const auto& [uid, sha1] : m.sha1) out += std::to_string(uid) + " " + sha1 + "\n";
  return out;
}

Result<GuidMap> ParseGuidMap(std::string_view text, const std::string& where) {
  GuidMap m;
  size_t line_no = 0;
  auto bad = [&](const std::string& what) {
    return CorruptionError(where + ": " + what + " at line " + std::to_string(line_no));
  };
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return bad("unterminated line");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (line_no == 1) {
      if (line != kMagic) return bad("not a guid map (or a newer version)");
      continue;
    }
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return bad("malformed line");
    std::string_view a = line.substr(0, sp), b = line.substr(sp + 1);
    uint32_t n = 0;
    if (line_no == 2) {
      if (a != "uidvalidity" || !ParseU32(b, &n)) return bad("missing uidvalidity");
      m.uidvalidity = n;
      continue;
    }
    if (!ParseU32(a, &n) || n == 0 || !IsSha1Hex(b)) return bad("malformed uid line");
    if (!m.sha1.emplace(n, std::string(b)).second) return bad("uid " + std::string(a) + " twice");
  }
  if (line_no < 2) return bad("truncated");
  return m;
}

std::string GuidMapName(const std::string& key) {
  return "folders/" + key + "/" + std::string(kGuidMapFile);
}

Result<GuidMap> LoadGuidMap(Env* env, IndexDb& idx, const std::string& archive,
                            const std::string& key, int64_t as_of) {
  const std::string name = GuidMapName(key);
  ASSIGN_OR_RETURN(auto e, idx.Latest(name, as_of));
  if (!e) return GuidMap{};
  ASSIGN_OR_RETURN(std::string text, ReadEntry(env, archive, *e));
  return ParseGuidMap(text, archive + ": " + name);
}

bool HasGuid(const cyrus::IndexRecord& r) {
  return std::any_of(r.guid.begin(), r.guid.end(), [](uint8_t b) { return b != 0; });
}

std::string ArchivedSha1(const cyrus::IndexRecord& r, const GuidMap& map) {
  if (HasGuid(r)) return r.GuidHex();
  auto it = map.sha1.find(r.uid);
  return it == map.sha1.end() ? std::string() : it->second;
}

Result<std::optional<Entry>> ArchivedBody(IndexDb& idx, const cyrus::IndexRecord& r,
                                          const GuidMap& map, int64_t as_of) {
  const std::string sha1 = ArchivedSha1(r, map);
  if (sha1.empty()) return std::optional<Entry>();
  return idx.Latest("files/" + sha1, as_of);
}

}  // namespace cyrsync::snapshot
