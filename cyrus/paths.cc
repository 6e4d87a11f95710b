#include "cyrus/paths.h"

#include <cctype>
#include <string>
#include <vector>

namespace cyrsync::cyrus {
namespace internal {
namespace {

std::vector<std::string_view> SplitOn(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

std::string Unhat(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '^') c = '.';
  }
  return out;
}

bool VirtDomains(const ImapdConf& conf) { return conf.virtdomains != "off"; }

// userid -> (localpart, domain) as mbname_from_userid: split at the last '@', dropping the
// defaultdomain.
std::pair<std::string, std::string> SplitUserid(const ImapdConf& conf, std::string_view userid) {
  size_t at = userid.rfind('@');
  if (at == std::string_view::npos) return {std::string(userid), ""};
  std::string domain(userid.substr(at + 1));
  if (domain == conf.defaultdomain) domain.clear();
  return {std::string(userid.substr(0, at)), domain};
}

// "domain/<h>/<domain>" (hashed) or "domain/<domain>".
std::string DomainDir(const ImapdConf& conf, std::string_view domain, bool hashed) {
  std::string out = "domain/";
  if (hashed) out += std::string(1, DirHashChar(domain, conf.fulldirhash)) + "/";
  return out + std::string(domain);
}

// mboxname_hash (imap/mboxname.c) relative to its root: [domain dir] [/<hash>] /comp/comp...
// The hash letter comes from the second name component (the only one if there is one);
// components keep their '^' (a '.' inside a name).
std::string NameHashRel(const ImapdConf& conf, std::string_view name) {
  std::string out;
  size_t bang = name.find('!');
  if (bang != std::string_view::npos) {
    std::string_view domain = name.substr(0, bang);
    if (domain != conf.defaultdomain) out = DomainDir(conf, domain, conf.hashimapspool);
    name.remove_prefix(bang + 1);
  }
  std::vector<std::string_view> comps = SplitOn(name, '.');
  if (conf.hashimapspool) {
    std::string_view idx = comps.size() > 1 ? comps[1] : comps[0];
    out += "/" + std::string(1, DirHashChar(Unhat(idx), conf.fulldirhash));
  }
  for (std::string_view c : comps) out += "/" + std::string(c);
  return out.front() == '/' ? out.substr(1) : out;
}

// mboxname_id_hash: uuid/<c0>/<c1>/<uniqueid>.
std::string UuidRel(std::string_view uniqueid) {
  return "uuid/" + std::string(1, uniqueid[0]) + "/" + std::string(1, uniqueid[1]) + "/" +
         std::string(uniqueid);
}

bool ByUniqueid(const MailboxEntry& mb) { return !mb.legacy_dirs && mb.uniqueid.size() >= 2; }

std::string MailboxRel(const ImapdConf& conf, const MailboxEntry& mb) {
  return ByUniqueid(mb) ? UuidRel(mb.uniqueid) : NameHashRel(conf, mb.intname);
}

// A path under the lock root: the lock root itself is not an imapd.conf root id of its own
// (mboxname_lockpath or <configdirectory>/lock), so lock paths are absolute.
std::string LockPath(const ImapdConf& conf, std::string_view name) {
  return JoinPath(conf.lockpath, NameHashRel(conf, name) + ".lock");
}

// metadir-<key>-<p> overflow key for a meta file; "" when the file has none (expunge).
std::string MetadirKey(MetaFile f, std::string_view partition) {
  std::string_view key;
  switch (f) {
    case MetaFile::kExpunge:
      return "";
    case MetaFile::kAnnotations:
      key = "index";
      break;  // as mboxname_metapath does
    default:
      key = MetaFileKey(f);
      break;
  }
  return "metadir-" + std::string(key) + "-" + std::string(partition);
}

std::string MetaRoot(const ImapdConf& conf, const MailboxEntry& mb, MetaFile f) {
  std::string overflow = MetadirKey(f, mb.partition);
  if (!overflow.empty() && !conf.Get(overflow).empty()) return overflow;
  if (conf.metapartition_files.contains(std::string(MetaFileKey(f))) &&
      conf.metapartitions.contains(mb.partition)) {
    return "metapartition-" + mb.partition;
  }
  return "partition-" + mb.partition;
}

}  // namespace
}  // namespace internal

Result<std::string> Resolve(const ImapdConf& conf, const RootedPath& p) {
  ASSIGN_OR_RETURN(std::string root, conf.RootDir(p.root));
  return JoinPath(root, p.rel);
}

char DirHashChar(std::string_view name, bool full) {
  if (full) {
    uint32_t n = 0;
    for (char ch : name) {
      if (ch == '.') break;
      n = ((n << 3) ^ (n >> 5)) ^ static_cast<unsigned char>(ch);
    }
    return static_cast<char>('A' + n % 23);
  }
  unsigned char c = name.empty() ? 0 : static_cast<unsigned char>(name[0]);
  if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c) : 'q';
}

std::string_view MetaFileName(MetaFile f) {
  switch (f) {
    case MetaFile::kHeader:
      return "cyrus.header";
    case MetaFile::kIndex:
      return "cyrus.index";
    case MetaFile::kCache:
      return "cyrus.cache";
    case MetaFile::kExpunge:
      return "cyrus.expunge";
    case MetaFile::kAnnotations:
      return "cyrus.annotations";
    case MetaFile::kSquat:
      return "cyrus.squat";
    case MetaFile::kDav:
      return "cyrus.dav";
  }
  return "";
}

std::string_view MetaFileKey(MetaFile f) {
  switch (f) {
    case MetaFile::kHeader:
      return "header";
    case MetaFile::kIndex:
      return "index";
    case MetaFile::kCache:
      return "cache";
    case MetaFile::kExpunge:
      return "expunge";
    case MetaFile::kAnnotations:
      return "annotations";
    case MetaFile::kSquat:
      return "squat";
    case MetaFile::kDav:
      return "dav";
  }
  return "";
}

const std::vector<MetaFile>& AllMetaFiles() {
  static const std::vector<MetaFile> kAll = {
      MetaFile::kHeader,      MetaFile::kIndex, MetaFile::kCache, MetaFile::kExpunge,
      MetaFile::kAnnotations, MetaFile::kSquat, MetaFile::kDav};
  return kAll;
}

RootedPath DataDir(const ImapdConf& conf, const MailboxEntry& mb) {
  return {"partition-" + mb.partition, internal::MailboxRel(conf, mb)};
}

RootedPath ArchiveDir(const ImapdConf& conf, const MailboxEntry& mb) {
  if (!conf.archive_enabled || !conf.archivepartitions.contains(mb.partition)) {
    return DataDir(conf, mb);
  }
  return {"archivepartition-" + mb.partition, internal::MailboxRel(conf, mb)};
}

RootedPath MetaPath(const ImapdConf& conf, const MailboxEntry& mb, MetaFile f) {
  return {internal::MetaRoot(conf, mb, f),
          JoinPath(internal::MailboxRel(conf, mb), MetaFileName(f))};
}

RootedPath MessagePath(const RootedPath& dir, uint32_t uid) {
  return {dir.root, JoinPath(dir.rel, std::to_string(uid) + ".")};
}

RootedPath UserFile(const ImapdConf& conf, std::string_view userid, const MailboxEntry* inbox,
                    std::string_view suffix) {
  const std::string sfx(suffix);
  if (inbox != nullptr && internal::ByUniqueid(*inbox)) {
    return {"configdirectory", "user/" + internal::UuidRel(inbox->uniqueid) + "/" + sfx + ".db"};
  }
  auto [local, domain] = internal::SplitUserid(conf, userid);
  std::string rel = domain.empty() ? "" : internal::DomainDir(conf, domain, true) + "/";
  if (local.empty()) return {"configdirectory", rel + "shared." + sfx};
  rel += "user/" + std::string(1, DirHashChar(local, conf.fulldirhash)) + "/" + local + "." + sfx;
  return {"configdirectory", rel};
}

RootedPath UserSieveDir(const ImapdConf& conf, std::string_view userid, const MailboxEntry* inbox) {
  if (inbox != nullptr && internal::ByUniqueid(*inbox)) {
    return {"sievedir", internal::UuidRel(inbox->uniqueid)};
  }
  auto [local, domain] = internal::SplitUserid(conf, userid);
  if (local.empty()) return {"sievedir", "global"};
  std::string rel;
  std::string name = domain.empty() ? local : local + "@" + domain;
  if (internal::VirtDomains(conf) && !domain.empty()) {
    rel = internal::DomainDir(conf, domain, true) + "/";
    name = local;
  }
  return {"sievedir", rel + std::string(1, DirHashChar(name, conf.fulldirhash)) + "/" + name};
}

RootedPath QuotaFile(const ImapdConf& conf, std::string_view quotaroot) {
  std::string rel;
  size_t bang = quotaroot.find('!');
  if (internal::VirtDomains(conf) && bang != std::string_view::npos) {
    rel = internal::DomainDir(conf, quotaroot.substr(0, bang), true) + "/";
    quotaroot.remove_prefix(bang + 1);
    if (quotaroot.empty()) return {"configdirectory", rel + "quota/root"};
  }
  size_t dot = quotaroot.find('.');
  std::string_view idx = dot == std::string_view::npos ? quotaroot : quotaroot.substr(dot + 1);
  return {"configdirectory", rel + "quota/" + std::string(1, DirHashChar(idx, conf.fulldirhash)) +
                                 "/" + std::string(quotaroot)};
}

std::string UserNamespaceLockPath(const ImapdConf& conf, std::string_view userid) {
  std::string name = "*U*";
  for (char c : userid) name.push_back(c == '.' ? '^' : c);
  return internal::LockPath(conf, name);
}

std::string MailboxNameLockPath(const ImapdConf& conf, const MailboxEntry& mb) {
  return internal::LockPath(conf, internal::ByUniqueid(mb) ? mb.uniqueid : mb.intname);
}

bool IsMessageFileName(std::string_view name) {
  if (name.size() < 2 || name.back() != '.') return false;
  for (char c : name.substr(0, name.size() - 1)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool IsMetaFileName(std::string_view name) {
  return name.size() > 6 && name.rfind("cyrus.", 0) == 0;
}

}  // namespace cyrsync::cyrus
