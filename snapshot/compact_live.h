// Private to Compact: which records of an archive are live (archive.h, Compact) and how much of
// the archive they make up. Thread-compatible.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "snapshot/archive.h"

namespace cyrsync::snapshot::internal {

using EntryKey = std::pair<uint64_t, uint64_t>;  // member_offset, data_offset
inline EntryKey KeyOf(const Entry& e) { return {e.loc.member_offset, e.loc.data_offset}; }

struct LiveSet {
  std::set<EntryKey> keep;
  uint64_t live_bytes = 0;  // uncompressed tar bytes (headers + padded data) of kept entries
  uint64_t all_bytes = 0;   // the same over every indexed entry
};

// entries: every indexed entry in archive order; runs: every run. Reads the kept folders'
// cyrus.index (and cyrus.expunge) from the archive to find the live files/<sha1>. kCorruption
// when one of them cannot be read or parsed: liveness would be guesswork.
Result<LiveSet> ComputeLive(Env* env, const std::string& archive_path,
                            const std::vector<Entry>& entries, const std::vector<RunInfo>& runs,
                            const CompactPolicy& policy);

}  // namespace cyrsync::snapshot::internal
