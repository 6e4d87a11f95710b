// Restores a user from its archive into the tree of a *stopped* Cyrus 3.6 server described by its
// imapd.conf: each folder's cyrus.* files and <uid>. message files at the paths that server
// computes for it (uuid or by-name layout), the user's seen/sub/dav files and sieve directory,
// plus the `ctl_mboxlist -u` JSON that registers the folders in its mailboxes.db with their
// original uniqueids, uidvalidities and ACLs. The operator then undumps the JSON and runs
// `reconstruct -r user.<name>` before starting Cyrus (README, Snapshots). Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cyrus/config.h"
#include "cyrus/mboxlist.h"
#include "cyrus/spool_entry.h"
#include "snapshot/restore.h"

namespace cyrsync::snapshot {

struct SpoolRestoreRequest : RestoreRequest {
  // Write over existing files and mailboxes.db entries of the same name or uniqueid. Without
  // it any of those is kFailedPrecondition and nothing is written. out_dir is not used.
  bool overwrite = false;
};


// Restores the whole user (req.folder empty) or one folder (then without the user's files) as of
// req.as_of into the target's spool, owned by req.owner, and sets *mailboxes_json to a JSON
// object keyed by internal name, in the form `ctl_mboxlist -d` prints and `-u` reads on stdin.
// Errors: kInvalidArgument for req.uid != 0 or a target without its defaultpartition (or a
// sievedir when the archive holds sieve files); kNotFound when req.folder is not in the archive
// as of that run; kFailedPrecondition (listing the conflicts, nothing written) when a target
// folder directory already holds files, a user file exists, or mailboxes.db already has one of
// the names or uniqueids, unless req.overwrite; archive and disk errors as they come.
// REQUIRES: the target Cyrus is stopped; mailboxes_json != nullptr.
Result<RestoreStats> RestoreIntoSpool(Env* env, const SpoolRestoreRequest& req,
                                      const cyrus::ImapdConf& target_conf,
                                      std::string* mailboxes_json);

using cyrus::BuildSpoolFolder;
using cyrus::MailboxesJson;
using cyrus::SpoolFolder;

}  // namespace cyrsync::snapshot
