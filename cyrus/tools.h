// Cyrus's own command-line tools, run for the server an imapd.conf describes: registering
// mailboxes.db entries (`ctl_mboxlist -u`) and checking a folder (`reconstruct`). Both work
// while Cyrus runs: they take the same locks the server does.
#pragma once

#include <string>

#include "common/env.h"
#include "common/status.h"
#include "cyrus/config.h"

namespace cyrsync::cyrus {

struct CyrusTools {
  std::string bin_dir = "/usr/lib/cyrus/bin";  // Debian's cyrus-common
  std::string conf_path;                       // the imapd.conf passed with -C
};

// Runs `ctl_mboxlist -C conf -u` with json_path (holding json, the form `ctl_mboxlist -d`
// prints) as its stdin, then checks that mailboxes.db lists every entry of json as a real
// folder with its uniqueid: 3.6.1's -u exits 0 even when it skips an entry.
// kFailedPrecondition naming the tool's exit and output, or the first entry missing.
Status UndumpMailboxes(Env* env, const ImapdConf& conf, const CyrusTools& tools,
                       const std::string& json_path, const std::string& json);

// Runs `reconstruct -C conf intname` and returns what it printed. kFailedPrecondition when it
// exits non-zero.
Result<std::string> ReconstructFolder(const CyrusTools& tools, const std::string& intname);

// Runs `quota -C conf -f -u userid`: recounts the usage of the user's quota root (reconstruct of
// a new folder does not add its messages to it). kFailedPrecondition when it exits non-zero.
Status FixUserQuota(const CyrusTools& tools, const std::string& userid);

}  // namespace cyrsync::cyrus
