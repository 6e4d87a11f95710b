// Server-wide state a replica Cyrus needs besides the folders: mailboxes.db and annotations.db,
// per-user seen, subscription, counters and conversations files, quota files, and sieve scripts
// with their bytecode and defaultbc link. Each is read under its own fcntl read lock (Cyrus's
// databases lock the file itself) and copied when its stat tuple differs from what the replica
// installed. Thread-compatible.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cyrus/config.h"
#include "cyrus/mboxlist.h"
#include "protocol/transport.h"
#include "syncer/folder_sync.h"
#include "syncer/spool.h"

namespace cyrsync::syncer {

struct ServerFile {
  cyrus::RootedPath path;
  std::string owner;               // "" for server-global files
  std::optional<FileStat> listed;  // lstat taken while listing (spares a second one)
};

// Lists the server files that exist on the source for the given users (all users when
// all_users), plus the global databases when all_users. Costs: a stat per candidate file (one
// path walk per user directory) and a readdir per user sieve directory and quota directory;
// users are listed on up to `threads` threads.
std::vector<ServerFile> ListServerFiles(const FolderContext& ctx,
                                        const std::vector<cyrus::MailboxEntry>& mailboxes,
                                        const std::set<std::string>& users, bool all_users,
                                        int threads = 1);

struct ServerFileStats {
  uint64_t copied = 0;
  uint64_t removed = 0;
};

// Copies the files that changed, then removes replica files of the same scope that are gone on
// the source.
Result<ServerFileStats> SyncServerFiles(protocol::Transport& t, const FolderContext& ctx,
                                        const std::vector<ServerFile>& files,
                                        const ReplicaView& view,
                                        const std::set<std::string>& users, bool all_users);

}  // namespace cyrsync::syncer
