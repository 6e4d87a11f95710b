// Restores from a user's archive into a running Cyrus, through the `cyrsync serve
// --allow-restore` daemon beside it, as NEW folders (the daemon registers each with
// `ctl_mboxlist -u` and checks it with `reconstruct`; nothing existing is written over).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "protocol/transport.h"
#include "snapshot/restore.h"

namespace cyrsync::snapshot {

struct LiveRestoreRequest {
  RestoreRequest from;  // paths, folder ("" = the whole user), uid (0 = every message), as_of
  // The new folder's internal name. For the whole user, every archived folder F of the user is
  // renamed below it: the INBOX becomes target, user.alice.X becomes target.X.
  std::string target;
};

struct LiveRestoreResult {
  std::vector<std::pair<std::string, std::string>> created;  // (new name, its uniqueid)
  RestoreStats stats;
};

// t: a connection to the daemon, before HELLO. kNotFound when the folder (or uid) is not in the
// archive as of the run; the daemon's refusals (name taken, not below an existing user, restores
// not allowed) as it sends them. Folders created before an error stay (they are listed in the
// error message).
Result<LiveRestoreResult> RestoreIntoLiveServer(Env* env, protocol::Transport& t,
                                                const LiveRestoreRequest& req);

}  // namespace cyrsync::snapshot
