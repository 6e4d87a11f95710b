#include "snapshot/restore.h"

#include <map>

#include "cyrus/index.h"
#include "snapshot/guid_map.h"

namespace cyrsync::snapshot {
namespace {

struct Restorer {
  Env* env;
  const RestoreRequest& req;
  IndexDb& idx;
  RestoreStats stats;

  Status Write(const std::string& path, std::string_view data) {
    RETURN_IF_ERROR(MakeDirs(env, Dirname(path), 0750, req.owner));
    return AtomicWriteFile(env, path, data, {.mode = 0600, .owner = req.owner});
  }

  Result<std::string> Read(const Entry& e) { return ReadEntry(env, req.paths.archive, e); }

  Status RestoreMessage(const cyrus::IndexRecord& r, const GuidMap& map, const std::string& path) {
    ASSIGN_OR_RETURN(auto e, ArchivedBody(idx, r, map, req.as_of));
    if (!e) {
      ++stats.missing;
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(std::string body, Read(*e));
    RETURN_IF_ERROR(Write(path, body));
    ++stats.messages;
    stats.bytes += body.size();
    return Status::Ok();
  }

  Status RestoreFolder(const std::string& key, const std::string& dir) {
    ASSIGN_OR_RETURN(auto meta, ArchivedFolderMeta(idx, key, req.as_of));
    ASSIGN_OR_RETURN(std::string index_bytes, Read(meta.at("cyrus.index")));
    ASSIGN_OR_RETURN(auto index, cyrus::ParseIndex(index_bytes, key + "/cyrus.index"));
    ASSIGN_OR_RETURN(GuidMap map, LoadGuidMap(env, idx, req.paths.archive, key, req.as_of));
    if (req.uid != 0) {
      for (const auto& r : index.records) {
        if (r.uid == req.uid && r.HasFile()) {
          return RestoreMessage(r, map, JoinPath(req.out_dir, std::to_string(r.uid) + "."));
        }
      }
      return NotFoundError("uid " + std::to_string(req.uid) + " is not in " + req.folder);
    }
    for (const auto& [name, e] : meta) {
      ASSIGN_OR_RETURN(std::string bytes, Read(e));
      RETURN_IF_ERROR(Write(JoinPath(dir, name), bytes));
    }
    for (const auto& r : index.records) {
      if (!r.HasFile()) continue;
      RETURN_IF_ERROR(RestoreMessage(r, map, JoinPath(dir, std::to_string(r.uid) + ".")));
    }
    ++stats.folders;
    return Status::Ok();
  }

  Status RestoreUserFiles() {
    for (const char* prefix : {"user/", "sieve/"}) {
      ASSIGN_OR_RETURN(auto entries, idx.LatestUnder(prefix, req.as_of));
      for (const auto& e : entries) {
        std::string path = JoinPath(req.out_dir, e.name);
        RETURN_IF_ERROR(MakeDirs(env, Dirname(path), 0750, req.owner));
        ASSIGN_OR_RETURN(std::string data, Read(e));
        if (e.kind == EntryKind::kSymlink) {
          (void)env->Remove(path);
          RETURN_IF_ERROR(env->Symlink(data, path));
        } else {
          RETURN_IF_ERROR(Write(path, data));
        }
      }
    }
    return Status::Ok();
  }
};

}  // namespace

Result<std::map<std::string, std::string>> ArchivedFolders(IndexDb& idx, int64_t as_of) {
  ASSIGN_OR_RETURN(auto links, idx.LatestUnder("imap/", as_of));
  std::map<std::string, std::string> out;
  for (const auto& link : links) {
    if (link.kind != EntryKind::kSymlink || link.link_target == kTombstoneTarget) continue;
    out[IntnameFromLink(link.name)] = link.link_target;
  }
  return out;
}

Result<std::map<std::string, Entry>> ArchivedFolderMeta(IndexDb& idx, const std::string& key,
                                                        int64_t as_of) {
  ASSIGN_OR_RETURN(auto entries, idx.LatestUnder("folders/" + key + "/", as_of));
  std::map<std::string, Entry> out;
  for (auto& e : entries) {
    std::string name = Basename(e.name);
    if (name != kGuidMapFile) out[std::move(name)] = std::move(e);  // not a Cyrus file
  }
  if (!out.count("cyrus.index")) return NotFoundError("no cyrus.index for folder " + key);
  return out;
}

Status FolderNotArchived(const std::string& folder, int64_t as_of) {
  return NotFoundError("folder " + folder + " is not in the archive as of run " +
                       (as_of ? std::to_string(as_of) : std::string("latest")) +
                       " (a deleted folder restores as of an earlier run: --run)");
}

Result<RestoreStats> RestoreToDirectory(Env* env, const RestoreRequest& req) {
  ASSIGN_OR_RETURN(auto idx, OpenIndexForArchive(env, req.paths.archive, req.paths.index));
  Restorer r{env, req, *idx, {}};
  ASSIGN_OR_RETURN(auto folders, ArchivedFolders(*idx, req.as_of));
  bool found = false;
  for (const auto& [intname, key] : folders) {
    if (!req.folder.empty() && intname != req.folder) continue;
    found = true;
    // The tree nests like Cyrus's by-name layout: user.alice.Sent -> user/alice/Sent/.
    std::string rel = intname;
    for (auto& c : rel) {
      if (c == '.') c = '/';
    }
    RETURN_IF_ERROR(r.RestoreFolder(key, JoinPath(req.out_dir, rel)));
  }
  if (!req.folder.empty() && !found) return FolderNotArchived(req.folder, req.as_of);
  if (req.folder.empty()) RETURN_IF_ERROR(r.RestoreUserFiles());
  return r.stats;
}

}  // namespace cyrsync::snapshot
