// The disk-loss guard: a side whose spool looks lost must never be used to wipe the other.
// Checked before a pass writes anything; `Options::force` is the operator's explicit override.
#pragma once

#include <cstdint>

#include "common/env.h"
#include "cyrus/config.h"
#include "syncer/options.h"

namespace cyrsync::syncer {

struct GuardInput {
  uint64_t source_folders = 0;   // real folders in scope listed by the source's mailboxes.db
  uint64_t source_missing = 0;   // of those, how many have no cyrus.index on the source
  uint64_t replica_folders = 0;  // folders the replica holds
  uint64_t deletions = 0;        // folders this pass would remove from the replica
};

// kFailedPrecondition when configdirectory, mailboxes.db or a partition root of the source is
// missing (unless opts.force).
Status CheckSourceRoots(Env* env, const cyrus::ImapdConf& conf, const Options& opts);

// kFailedPrecondition when the source lists no folders while the replica holds some, when too
// many listed folders have no files on the source, or when the pass would delete too large a
// share of the replica (unless opts.force). The message names the numbers and the override.
Status CheckGuard(const GuardInput& in, const Options& opts);

}  // namespace cyrsync::syncer
