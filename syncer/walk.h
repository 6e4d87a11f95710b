// The --full walk of the source spool: readdir + d_type only. A "cyrus.*" name is metadata, a
// "<digits>." name is a message file and is never stat()ed, any other non-dot directory is
// descended into. Vanished directories are normal on a live spool and are skipped.
#pragma once

#include <spdlog/spdlog.h>

#include <vector>

#include "common/env.h"
#include "cyrus/config.h"
#include "syncer/spool.h"

namespace cyrsync::syncer {

struct WalkStats {
  uint64_t dirs = 0;
  uint64_t message_files = 0;
  uint64_t vanished = 0;
  std::vector<std::string> folder_dirs;  // absolute directories holding a cyrus.header
};

// Walks every partition and metapartition root of conf.
WalkStats WalkSpool(Env* env, const cyrus::ImapdConf& conf);

// Logs every folder directory the walk found that no listed folder owns; returns their count.
uint64_t ReportUnlistedFolders(const cyrus::ImapdConf& conf, const WalkStats& walked,
                               const std::vector<const cyrus::MailboxEntry*>& listed,
                               spdlog::logger& log);

}  // namespace cyrsync::syncer
