// Restores from a user's archive into a directory, as of the latest or a given run: the whole
// user (a Cyrus-ready folder tree per folder: cyrus.* files plus <uid>. message files, and the
// user's seen/subscription/sieve files), one folder, or one message. Reading one message seeks
// by the index offsets and inflates only the member that holds it.
#pragma once

#include <map>
#include <string>

#include "common/env.h"
#include "snapshot/archive.h"
#include "snapshot/engine.h"

namespace cyrsync::snapshot {

struct RestoreRequest {
  ArchivePaths paths;
  std::string folder;   // internal name ("user.alice.Sent"); "" = the whole user
  uint32_t uid = 0;     // with folder: only this message, written as <out_dir>/<uid>.
  int64_t as_of = 0;    // run id; 0 = latest
  std::string out_dir;
  Owner owner;          // owner of what is written (the Cyrus user), when set
};

struct RestoreStats {
  uint64_t folders = 0, messages = 0, bytes = 0, missing = 0;
  // RestoreIntoSpool: the archive holds the user's quota root file, but it was not written:
  // the target keeps its quotas in a database (quota_db other than quotalegacy), or the
  // archive has no INBOX to name the root.
  bool quota_not_restored = false;
};

// The folders the archive holds as of run as_of (0 = latest): internal name -> archive key
// (the folder's uniqueid, or its name when it had none). Deleted folders are left out.
Result<std::map<std::string, std::string>> ArchivedFolders(IndexDb& idx, int64_t as_of);
// One folder's latest metadata entries as of the run, by file name ("cyrus.index", ...).
// kNotFound when there is no cyrus.index.
Result<std::map<std::string, Entry>> ArchivedFolderMeta(IndexDb& idx, const std::string& key,
                                                        int64_t as_of);
// kNotFound naming the folder and the run, with the hint that --run reaches deleted folders.
Status FolderNotArchived(const std::string& folder, int64_t as_of);

// kNotFound when the folder (or uid) is not in the archive as of that run; a folder deleted
// since is still restorable as of an earlier run (or until compaction drops it after retention).
Result<RestoreStats> RestoreToDirectory(Env* env, const RestoreRequest& req);

}  // namespace cyrsync::snapshot
