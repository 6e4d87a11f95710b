// Runs snapshots for many users: picks each user's slot (the replica by default, the master on
// request or when the replica is unreachable or lags, as configured), and spreads users over
// worker threads in batches grouped by the slot's drive unit, so no disk gets every worker.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <vector>

#include "common/env.h"
#include "snapshot/config.h"
#include "snapshot/restore_live.h"
#include "snapshot/engine.h"

namespace cyrsync::snapshot {

struct UserOutcome {
  std::string user;
  std::string source;  // the slot actually used
  std::string note;    // why a fallback happened, if one did
  Status status;
  SnapshotStats stats;
};

// from: "" (config default), "master" or "replica". Returns one outcome per user, in order.
std::vector<UserOutcome> SnapshotUsers(Env* env, const SnapshotConfig& conf,
                                       const std::vector<std::string>& users,
                                       const std::string& from, spdlog::logger& log);

// Archive <-> slot check: everything the user's slot serves now (each folder, and each message
// its cyrus.index names) must be in the user's archive. Returns the problems found ([] = ok);
// an error when the slot or the archive cannot be read at all.
Result<std::vector<std::string>> VerifyAgainstSlot(Env* env, const SnapshotConfig& conf,
                                                   const std::string& user,
                                                   const std::string& from);

// Restores into the running Cyrus of the user's slot `role` ("master" or "replica") through its
// daemon (which must run with --allow-restore): see RestoreIntoLiveServer.
Result<LiveRestoreResult> RestoreIntoSlot(Env* env, const SnapshotConfig& conf,
                                          const std::string& user, const std::string& role,
                                          const LiveRestoreRequest& req);

}  // namespace cyrsync::snapshot
