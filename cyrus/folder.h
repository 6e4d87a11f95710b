// A folder as an outside reader of a live spool needs it: its identity and the paths of its
// message directories and cyrus.* files, plus Cyrus's read-lock protocol for 3.4+ (user
// namespace lock, mailbox name lock, cyrus.index F_RDLCK; shared; in Cyrus's order;
// cyrus-formats.md §11). Used by the syncer and by the daemon's read service.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/env.h"
#include "cyrus/config.h"
#include "cyrus/mboxlist.h"
#include "cyrus/paths.h"

namespace cyrsync::cyrus {

struct Folder {
  MailboxEntry mb;
  std::string key;    // uniqueid, or the internal name when there is none
  std::string owner;  // userid or "" for shared folders
  RootedPath data_dir, archive_dir;
  RootedPath header, index, expunge;
  std::vector<RootedPath> other_meta;  // cache, annotations
};

Folder DescribeFolder(const ImapdConf& conf, const MailboxEntry& mb);
// Folder::key alone: the uniqueid, or the internal name when there is none.
std::string FolderKey(const MailboxEntry& mb);

// Held while a folder's metadata is read; released in reverse order of acquisition on
// destruction. Writers of that user's mailboxes (deliveries, flag changes) block meanwhile.
struct FolderReadLock {
  std::unique_ptr<FileLock> ns;
  std::unique_ptr<FileLock> name;
  std::unique_ptr<ReadableFile> header;   // pre-2.4 index only: cyrus.header, F_RDLCK
  std::unique_ptr<ReadableFile> index;    // open cyrus.index carrying the F_RDLCK
  FileStat index_st;                      // its fstat under the lock
  std::unique_ptr<ReadableFile> expunge;  // pre-2.4 index only, when present: F_RDLCK
  ~FolderReadLock() {
    expunge.reset();
    index.reset();
    header.reset();
    name.reset();
    ns.reset();
  }
};

// Takes the locks, shared, in Cyrus's order (cyrus-formats.md §11.2): the user namespace lock and
// the mailbox name lock (2.4+), then cyrus.index. For a folder whose index is older than v12
// (written by 2.3, whose processes lock cyrus.header -> cyrus.index -> cyrus.expunge, all
// exclusive) also cyrus.header before the index and cyrus.expunge after it; a 3.x server never
// locks those two files, so they cost it nothing.
// lock_owner owns lock files this call has to create (the Cyrus user).
// Reopens cyrus.index when Cyrus replaced it (repack) between open and lock. kNotFound when the
// folder vanished.
Result<std::unique_ptr<FolderReadLock>> LockFolderForRead(Env* env, const ImapdConf& conf,
                                                          const Folder& f,
                                                          const Owner& lock_owner);

struct OpenMeta {
  RootedPath path;
  std::unique_ptr<ReadableFile> file;
  FileStat st;
};

// Opens cyrus.header (required) and every other cyrus.* file that exists (cyrus.expunge only
// for a pre-v12 index). REQUIRES: the folder's read lock is held.
Result<std::vector<OpenMeta>> OpenFolderMeta(Env* env, const ImapdConf& conf, const Folder& f,
                                             uint32_t index_minor);

// The Cyrus user as owner of the configdirectory (lock files we create must be Cyrus's).
Owner SpoolOwner(Env* env, const ImapdConf& conf);

}  // namespace cyrsync::cyrus
