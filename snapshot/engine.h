// Takes one user's snapshot from a daemon's read service into that user's archive: stats first
// (USER_STATE), then only changed folders' metadata (fetched under Cyrus's locks) and only
// messages whose GUID the archive does not hold yet, each checked against its GUID (a message
// without GUID is fetched once per uid and stored under its SHA-1). One run per
// call; an unchanged user adds nothing. Thread-compatible: one call per user at a time.
#pragma once

#include <string>

#include "common/env.h"
#include "protocol/messages.h"
#include "protocol/transport.h"
#include "snapshot/archive.h"

namespace cyrsync::snapshot {

struct ArchivePaths {
  std::string archive;  // <dir>/<user>.tar.gz
  std::string index;    // <dir>/<user>.index.sqlite
};
ArchivePaths PathsFor(const std::string& archive_dir, const std::string& user);

struct SnapshotStats {
  bool unchanged = false;  // nothing changed since the last run: no run was appended
  int64_t run_id = 0;
  uint64_t folders = 0, folders_fetched = 0, folders_removed = 0;
  uint64_t messages_added = 0, bytes_added = 0, user_files = 0;
  // Index records with an all-zero GUID (written before Cyrus had GUIDs and never given one by
  // `reconstruct -G`): archived under the SHA-1 of their body, found through the folder's guid
  // map (snapshot/guid_map.h); nothing checks such a body against its index record.
  uint64_t messages_without_guid = 0;
};

// Reads the user's state through an open read session (HELLO done) and appends a run.
// kAborted "changed underfoot" when a fetched message does not hash to its GUID (the archive is
// not touched: the run is never committed and its bytes are cut at the next run).
Result<SnapshotStats> SnapshotUser(Env* env, protocol::Transport& t, const std::string& user,
                                   const std::string& source, const ArchivePaths& paths,
                                   const WriterOptions& writer = {});

// The same with a USER_STATE already fetched on t (slot selection reads synced_at first).
Result<SnapshotStats> SnapshotUserWithState(Env* env, protocol::Transport& t,
                                            const std::string& user,
                                            const protocol::UserState& state,
                                            const std::string& source, const ArchivePaths& paths,
                                            const WriterOptions& writer = {});

// Fetches USER_STATE (used by slot selection to read synced_at before snapshotting).
Result<protocol::UserState> FetchUserState(protocol::Transport& t, const std::string& user);

// "user.alice.Sent" -> "imap/user.alice.Sent": one flat directory of links, so that no link is
// also the parent directory of another (GNU tar could not extract that). '%' and '/' in a name
// are written as %25 and %2F.
std::string LinkName(const std::string& intname);
// The inverse; "" when name is not a link name.
std::string IntnameFromLink(const std::string& name);

}  // namespace cyrsync::snapshot
