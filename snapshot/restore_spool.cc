#include "snapshot/restore_spool.h"

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "common/bytes.h"
#include "cyrus/header.h"
#include "cyrus/index.h"
#include "cyrus/paths.h"
#include "snapshot/guid_map.h"

namespace cyrsync::snapshot {
namespace {

// user/quota: the user's quota root file (quotalegacy), see doc/formats/archive.md.
constexpr std::string_view kQuotaBase = "quota";

// 3.6 mbtype type letters (cyrus-formats.md §6.3); anything else is a legacy flag string.
constexpr size_t kMaxListedConflicts = 8;

// The user's INBOX among the folders: [domain!]user.<name> with no further component.
const SpoolFolder* FindInbox(const std::vector<const SpoolFolder*>& folders) {
  for (const SpoolFolder* f : folders) {
    std::string_view n = f->mb.intname;
    size_t bang = n.find('!');
    if (bang != std::string_view::npos) n.remove_prefix(bang + 1);
    if (n.rfind("user.", 0) == 0 && n.find('.', 5) == std::string_view::npos) return f;
  }
  return nullptr;
}

// A folder to restore: its target entry, archived metadata and the records that have a file.
struct PlannedFolder {
  SpoolFolder f;
  std::map<std::string, Entry> meta;  // file name -> newest entry as of the run
  std::vector<cyrus::IndexRecord> records;
  GuidMap map;  // bodies of records without GUID
};

// A per-user file (seen, sub, dav) or sieve file and where it goes on the target.
struct PlannedUserFile {
  Entry entry;
  std::string path;
};

class SpoolRestorer {
 public:
  SpoolRestorer(Env* env, const SpoolRestoreRequest& req, const cyrus::ImapdConf& conf,
                IndexDb& idx)
      : env_(env), req_(req), conf_(conf), idx_(idx) {}

  Result<std::vector<PlannedFolder>> PlanFolders() {
    ASSIGN_OR_RETURN(auto links, idx_.LatestUnder("imap/", req_.as_of));
    std::vector<PlannedFolder> out;
    for (const auto& link : links) {
      if (link.kind != EntryKind::kSymlink || link.link_target == kTombstoneTarget) continue;
      std::string intname = IntnameFromLink(link.name);
      if (!req_.folder.empty() && intname != req_.folder) continue;
      ASSIGN_OR_RETURN(PlannedFolder p, PlanFolder(intname, link.link_target));
      out.push_back(std::move(p));
    }
    if (out.empty()) {
      std::string what = req_.folder.empty() ? "no folder" : "folder " + req_.folder;
      return NotFoundError(what + " is in the archive as of run " +
                           (req_.as_of ? std::to_string(req_.as_of) : std::string("latest")));
    }
    return out;
  }

  Result<std::vector<PlannedUserFile>> PlanUserFiles(const std::vector<PlannedFolder>& folders) {
    std::vector<PlannedUserFile> out;
    if (!req_.folder.empty()) return out;
    std::vector<const SpoolFolder*> fs;
    for (const auto& p : folders) fs.push_back(&p.f);
    const SpoolFolder* inbox = FindInbox(fs);
    const cyrus::MailboxEntry* inbox_mb = inbox ? &inbox->mb : nullptr;
    std::string userid = (inbox ? inbox->mb : fs.front()->mb).Owner();
    if (userid.empty()) return out;
    for (const char* prefix : {"user/", "sieve/"}) {
      ASSIGN_OR_RETURN(auto entries, idx_.LatestUnder(prefix, req_.as_of));
      for (auto& e : entries) {
        std::string base = e.name.substr(std::string_view(prefix).size());
        if (base.empty() || base.find('/') != std::string::npos) continue;
        if (std::string_view(prefix) == "user/" && base == kQuotaBase &&
            (conf_.quota_db != "quotalegacy" || !inbox_mb)) {
          stats_.quota_not_restored = true;
          continue;
        }
        ASSIGN_OR_RETURN(std::string path, UserFilePath(prefix, base, userid, inbox_mb));
        out.push_back({std::move(e), std::move(path)});
      }
    }
    return out;
  }

  // Everything that is already on the target; empty when nothing is in the way.
  Result<std::vector<std::string>> Conflicts(const std::vector<PlannedFolder>& folders,
                                             const std::vector<PlannedUserFile>& user_files) {
    std::vector<std::string> out;
    for (const auto& p : folders) {
      ASSIGN_OR_RETURN(auto dirs, FolderDirs(p.f.mb, p.meta));
      for (const auto& d : dirs) RETURN_IF_ERROR(FilesIn(d, &out));
    }
    for (const auto& u : user_files) {
      auto st = env_->Stat(u.path);
      if (st.ok()) out.push_back(u.path);
      if (!st.ok() && st.error().code() != Code::kNotFound) return st.error();
    }
    RETURN_IF_ERROR(MailboxListConflicts(folders, &out));
    return out;
  }

  Status WriteFolder(const PlannedFolder& p) {
    std::set<std::string> dirs;
    for (const auto& r : p.records) {
      const auto dir =
          r.Archived() ? cyrus::ArchiveDir(conf_, p.f.mb) : cyrus::DataDir(conf_, p.f.mb);
      ASSIGN_OR_RETURN(std::string path, cyrus::Resolve(conf_, cyrus::MessagePath(dir, r.uid)));
      RETURN_IF_ERROR(WriteMessage(r, p.map, path));
      dirs.insert(Dirname(path));
    }
    // Metadata after the messages, cyrus.index last, in Cyrus's own order of commits.
    for (const auto& [name, e] : p.meta) {
      if (name != "cyrus.index") RETURN_IF_ERROR(WriteMeta(p.f.mb, name, e, &dirs));
    }
    RETURN_IF_ERROR(WriteMeta(p.f.mb, "cyrus.index", p.meta.at("cyrus.index"), &dirs));
    for (const auto& d : dirs) RETURN_IF_ERROR(env_->SyncDir(d));
    ++stats_.folders;
    return Status::Ok();
  }

  Status WriteUserFile(const PlannedUserFile& u) {
    RETURN_IF_ERROR(MakeDirs(env_, Dirname(u.path), 0750, req_.owner));
    ASSIGN_OR_RETURN(std::string data, ReadEntry(env_, req_.paths.archive, u.entry));
    if (u.entry.kind != EntryKind::kSymlink) return Write(u.path, data, true);
    // Cyrus links defaultbc to a script in the same directory ("main.bc").
    if (data.empty() || data.find('/') != std::string::npos) {
      return CorruptionError(u.entry.name + ": unexpected symlink target \"" + data + "\"");
    }
    (void)env_->Remove(u.path);
    RETURN_IF_ERROR(env_->Symlink(data, u.path));
    if (req_.owner.set) RETURN_IF_ERROR(env_->Chown(u.path, req_.owner.uid, req_.owner.gid));
    return env_->SyncDir(Dirname(u.path));
  }

  const RestoreStats& stats() const { return stats_; }

 private:
  Result<PlannedFolder> PlanFolder(const std::string& intname, const std::string& key) {
    PlannedFolder p;
    ASSIGN_OR_RETURN(auto entries, idx_.LatestUnder("folders/" + key + "/", req_.as_of));
    for (auto& e : entries) {
      std::string name = Basename(e.name);
      if (name != kGuidMapFile) p.meta[std::move(name)] = std::move(e);  // not a Cyrus file
    }
    ASSIGN_OR_RETURN(p.map, LoadGuidMap(env_, idx_, req_.paths.archive, key, req_.as_of));
    if (!p.meta.count("cyrus.header") || !p.meta.count("cyrus.index")) {
      return CorruptionError("folder " + intname + " (" + key +
                             ") lacks cyrus.header or cyrus.index in the archive");
    }
    ASSIGN_OR_RETURN(std::string header, Read(p.meta.at("cyrus.header")));
    ASSIGN_OR_RETURN(std::string index, Read(p.meta.at("cyrus.index")));
    ASSIGN_OR_RETURN(p.f, BuildSpoolFolder(intname, key, header, index, conf_));
    p.f.mtime = env_->NowNanos() / 1'000'000'000;
    RETURN_IF_ERROR(AddRecords(index, intname + "/cyrus.index", &p.records));
    if (p.meta.count("cyrus.expunge")) {  // pre-2.4 folders keep expunged messages there
      ASSIGN_OR_RETURN(std::string expunge, Read(p.meta.at("cyrus.expunge")));
      RETURN_IF_ERROR(AddRecords(expunge, intname + "/cyrus.expunge", &p.records));
    }
    return p;
  }

  static Status AddRecords(std::string_view bytes, const std::string& what,
                           std::vector<cyrus::IndexRecord>* out) {
    ASSIGN_OR_RETURN(auto index, cyrus::ParseIndex(bytes, what));
    for (const auto& r : index.records) {
      if (r.HasFile()) out->push_back(r);
    }
    return Status::Ok();
  }

  Result<std::string> UserFilePath(std::string_view prefix, const std::string& base,
                                   const std::string& userid, const cyrus::MailboxEntry* inbox) {
    cyrus::RootedPath p;
    if (prefix == "user/" && base == kQuotaBase) {
      p = cyrus::QuotaFile(conf_, inbox->intname);  // the INBOX is the user's quota root
    } else if (prefix == "user/") {
      p = cyrus::UserFile(conf_, userid, inbox, base);
    } else {
      if (conf_.sievedir.empty()) {
        return InvalidArgumentError("the archive holds sieve files but " + conf_.source_path +
                                    " sets no sievedir");
      }
      cyrus::RootedPath dir = cyrus::UserSieveDir(conf_, userid, inbox);
      p = {dir.root, JoinPath(dir.rel, base)};
    }
    return cyrus::Resolve(conf_, p);
  }

  cyrus::RootedPath MetaTarget(const cyrus::MailboxEntry& mb, const std::string& name) {
    for (cyrus::MetaFile mf : cyrus::AllMetaFiles()) {
      if (cyrus::MetaFileName(mf) == name) return cyrus::MetaPath(conf_, mb, mf);
    }
    cyrus::RootedPath dir = cyrus::DataDir(conf_, mb);  // a name cyrsync does not know
    return {dir.root, JoinPath(dir.rel, name)};
  }

  // Absolute directories a folder's files go to.
  Result<std::set<std::string>> FolderDirs(const cyrus::MailboxEntry& mb,
                                           const std::map<std::string, Entry>& meta) {
    std::set<std::string> out;
    for (const auto& dir : {cyrus::DataDir(conf_, mb), cyrus::ArchiveDir(conf_, mb)}) {
      ASSIGN_OR_RETURN(std::string abs, cyrus::Resolve(conf_, dir));
      out.insert(abs);
    }
    for (const auto& [name, e] : meta) {
      ASSIGN_OR_RETURN(std::string abs, cyrus::Resolve(conf_, MetaTarget(mb, name)));
      out.insert(Dirname(abs));
    }
    return out;
  }

  // Appends the non-directory entries of dir (child folders of the by-name layout are fine).
  Status FilesIn(const std::string& dir, std::vector<std::string>* out) {
    auto ls = env_->ListDir(dir);
    if (!ls.ok()) return ls.error().code() == Code::kNotFound ? Status::Ok() : ls.error();
    for (const auto& e : *ls) {
      if (e.type != EntryType::kDir) out->push_back(JoinPath(dir, e.name));
    }
    return Status::Ok();
  }

  Status MailboxListConflicts(const std::vector<PlannedFolder>& folders,
                              std::vector<std::string>* out) {
    auto list = cyrus::LoadMailboxList(env_, conf_);
    if (!list.ok()) return list.error().code() == Code::kNotFound ? Status::Ok() : list.error();
    std::set<std::string> names, ids;
    for (const auto& p : folders) {
      names.insert(p.f.mb.intname);
      ids.insert(p.f.mb.uniqueid);
    }
    for (const auto& mb : *list) {
      if (mb.tombstone) continue;  // ctl_mboxlist -u replaces a tombstone's records
      if (names.count(mb.intname) || (!mb.uniqueid.empty() && ids.count(mb.uniqueid))) {
        out->push_back(conf_.mboxlist_db_path + ": " + mb.intname + " (" + mb.uniqueid + ")");
      }
    }
    return Status::Ok();
  }

  Result<std::string> Read(const Entry& e) { return ReadEntry(env_, req_.paths.archive, e); }

  Status Write(const std::string& path, std::string_view data, bool sync_dir) {
    RETURN_IF_ERROR(MakeDirs(env_, Dirname(path), 0750, req_.owner));
    return AtomicWriteFile(env_, path, data,
                           {.mode = 0600, .owner = req_.owner, .sync_dir = sync_dir});
  }

  Status WriteMeta(const cyrus::MailboxEntry& mb, const std::string& name, const Entry& e,
                   std::set<std::string>* dirs) {
    ASSIGN_OR_RETURN(std::string path, cyrus::Resolve(conf_, MetaTarget(mb, name)));
    ASSIGN_OR_RETURN(std::string bytes, Read(e));
    dirs->insert(Dirname(path));
    return Write(path, bytes, false);
  }

  // A message whose GUID was written before is hard-linked to that file, as Cyrus's
  // singleinstancestore does; a file the archive lacks is counted as missing.
  Status WriteMessage(const cyrus::IndexRecord& r, const GuidMap& map, const std::string& path) {
    const std::string sha1 = ArchivedSha1(r, map);
    auto it = sha1.empty() ? written_.end() : written_.find(sha1);
    if (it != written_.end()) {
      RETURN_IF_ERROR(MakeDirs(env_, Dirname(path), 0750, req_.owner));
      if (req_.overwrite) (void)env_->Remove(path);
      if (env_->Link(it->second, path).ok()) {
        ++stats_.messages;
        return Status::Ok();
      }  // another filesystem (archive partition): write a copy
    }
    ASSIGN_OR_RETURN(auto e, ArchivedBody(idx_, r, map, req_.as_of));
    if (!e) {
      ++stats_.missing;
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(std::string body, Read(*e));
    RETURN_IF_ERROR(Write(path, body, false));
    written_.emplace(sha1, path);
    ++stats_.messages;
    stats_.bytes += body.size();
    return Status::Ok();
  }

  Env* env_;
  const SpoolRestoreRequest& req_;
  const cyrus::ImapdConf& conf_;
  IndexDb& idx_;
  RestoreStats stats_;
  std::map<std::string, std::string> written_;  // body SHA-1 -> first path written
};

Status ConflictError(const std::vector<std::string>& conflicts) {
  std::string msg = "the target already holds " + std::to_string(conflicts.size()) +
                    " of the files or mailboxes to restore (--overwrite replaces them):";
  for (size_t i = 0; i < conflicts.size() && i < kMaxListedConflicts; ++i) {
    msg += " " + conflicts[i];
  }
  if (conflicts.size() > kMaxListedConflicts) msg += " ...";
  return FailedPreconditionError(msg);
}

Result<std::string> FoldersJson(const std::vector<PlannedFolder>& planned) {
  std::vector<SpoolFolder> folders;
  for (const auto& p : planned) folders.push_back(p.f);
  try {
    return MailboxesJson(folders);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(std::string("a folder name is not valid UTF-8: ") + e.what());
  }
}

}  // namespace

Result<RestoreStats> RestoreIntoSpool(Env* env, const SpoolRestoreRequest& req,
                                      const cyrus::ImapdConf& target_conf,
                                      std::string* mailboxes_json) {
  if (req.uid != 0) {
    return InvalidArgumentError("a single message cannot be restored into a spool (use --to)");
  }
  if (!target_conf.partitions.count(target_conf.defaultpartition)) {
    return InvalidArgumentError(target_conf.source_path + " defines no partition-" +
                                target_conf.defaultpartition + " (its defaultpartition)");
  }
  ASSIGN_OR_RETURN(auto idx, OpenIndexForArchive(env, req.paths.archive, req.paths.index));
  SpoolRestorer r(env, req, target_conf, *idx);
  ASSIGN_OR_RETURN(auto folders, r.PlanFolders());
  ASSIGN_OR_RETURN(auto user_files, r.PlanUserFiles(folders));
  if (!req.overwrite) {
    ASSIGN_OR_RETURN(auto conflicts, r.Conflicts(folders, user_files));
    if (!conflicts.empty()) return ConflictError(conflicts);
  }
  ASSIGN_OR_RETURN(std::string json, FoldersJson(folders));
  for (const auto& p : folders) RETURN_IF_ERROR(r.WriteFolder(p));
  for (const auto& u : user_files) RETURN_IF_ERROR(r.WriteUserFile(u));
  *mailboxes_json = std::move(json);
  return r.stats();
}

}  // namespace cyrsync::snapshot
