// syncer::Options: everything a sync pass needs besides the spool's imapd.conf. Filled once by
// main from the command line; plain data.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace cyrsync::syncer {

struct Options {
  // Which mailboxes: all (-A), the mailboxes of these users (-u), or these internal names (-m).
  bool all = true;
  std::vector<std::string> users;
  std::vector<std::string> mailboxes;
  // --full: also compare directory listings (readdir + d_type) on both sides and repair what the
  // replica lost; report folders on disk that mailboxes.db does not list.
  bool full = false;
  // Parallel connections / reader threads (default 4).
  int workers = 4;
  // Threads that stat the folders' cyrus.* files at the start of a pass (default 8: with a cold
  // cache the stats wait on the disk, not the CPU).
  int stat_threads = 16;
  // A file modified less than this long before it was copied may change again within the same
  // timestamp tick; it is copied again on the next pass ("racy git"). Default 1 s, which also
  // covers filesystems with whole-second timestamps.
  int64_t racy_window_ns = 1'000'000'000;
  // Guard against a lost source wiping the replica: refuse when more than this share of the
  // listed folders have no cyrus.index on the source, or when a pass would delete more than
  // max_delete_share of the replica's folders. `force` overrides both (operator decision).
  double max_missing_share = 0.05;
  double max_delete_share = 0.5;
  bool force = false;
};

}  // namespace cyrsync::syncer
