// Copies one changed folder to the replica: takes Cyrus's own locks (user namespace, mailbox
// name, cyrus.index; shared, in Cyrus's order), streams every cyrus.* file while holding them,
// releases, then sends the message files the replica asks for. Message files are opened and read,
// never stat()ed. One call per folder; thread-compatible (one transport per thread).
#pragma once

#include <spdlog/spdlog.h>

#include "common/env.h"
#include "cyrus/config.h"
#include "protocol/transport.h"
#include "syncer/options.h"
#include "syncer/spool.h"

namespace cyrsync::syncer {

struct FolderResult {
  uint64_t messages_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t messages_vanished = 0;
  bool unsettled = false;
};

struct FolderContext {
  Env* env;
  const cyrus::ImapdConf* conf;
  Owner lock_owner;  // owner for lock files we have to create (the Cyrus user)
  int64_t racy_window_ns;
  spdlog::logger* log;
  const ReplicaView* view = nullptr;  // the replica's manifest, to choose librsync deltas
};

// Files at least this large are sent as a librsync delta when the replica has a copy.
inline constexpr uint64_t kDeltaMinSize = 64 << 10;

// Asks the replica for the signature of its copy of path; "" when it has no trusted copy.
Result<std::string> FetchSignature(protocol::Transport& t, const protocol::WirePath& path);

// The signature to delta against for a file the replica holds (per view) and that is large
// enough to benefit; "" otherwise.
Result<std::string> SignatureIfWorthIt(protocol::Transport& t, const FolderContext& ctx,
                                       const protocol::WirePath& path);

// full: the replica compares with a readdir of its directories instead of trusting the index it
// installed. check_only: send no metadata (the folder is unchanged); only repair message files.
// kNotFound when the folder vanished on the source; kCorruption when its cyrus.index is corrupt
// (nothing is sent for it, so the replica keeps its last good copy).
Result<FolderResult> SyncFolder(protocol::Transport& t, const FolderContext& ctx,
                                const Folder& f, bool full, bool check_only);

}  // namespace cyrsync::syncer
