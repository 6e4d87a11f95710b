// Run markers (doc/formats/archive.md §Run markers): the small JSON entries "runs/<id>.json"
// (written first in a run) and "runs/<id>.end.json" (written last, at Commit) that let Reindex
// recover run metadata from the archive alone. Sans-I/O; the decoder takes untrusted bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "snapshot/archive.h"

namespace cyrsync::snapshot {

inline constexpr std::string_view kArchiveFormatName = "cyrsync-archive";

std::string RunMarkerName(int64_t run_id);     // "runs/<id>.json"
std::string RunEndMarkerName(int64_t run_id);  // "runs/<id>.end.json"

struct MarkerName {
  int64_t run_id = 0;
  bool end = false;
};
// Recognises the two marker names (run ids are positive decimal without leading zeros).
std::optional<MarkerName> ParseMarkerName(std::string_view name);

// {"format":"cyrsync-archive","version":2,"run_id":..,"started":..,"source":"..","user":".."}
std::string EncodeRunMarker(const RunInfo& run);
// {"format":"cyrsync-archive","version":2,"run_id":..,"finished":..}
std::string EncodeRunEndMarker(const RunInfo& run);

// Decodes a start marker (end = false: run_id, started, source, user) or an end marker
// (end = true: run_id, finished). Unknown keys are ignored so later versions can add some.
// kCorruption for malformed JSON, a missing or mistyped key, another format name, or a
// version newer than kArchiveFormatVersion.
Result<RunInfo> DecodeRunMarker(std::string_view json, bool end);

}  // namespace cyrsync::snapshot
