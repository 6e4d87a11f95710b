// Messages whose cyrus.index record has no GUID (written before Cyrus had GUIDs and never given
// one by `reconstruct -G`) are archived like any other, under the SHA-1 of their body. The
// folder's guid map, member folders/<uniqueid>/cyrsync.guids, says which uid holds which body.
// It is written with the folder's metadata in each run where it changed (doc/formats/archive.md).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/env.h"
#include "cyrus/index.h"
#include "snapshot/archive.h"

namespace cyrsync::snapshot {

inline constexpr std::string_view kGuidMapFile = "cyrsync.guids";

struct GuidMap {
  uint32_t uidvalidity = 0;
  std::map<uint32_t, std::string> sha1;  // uid -> SHA-1 (hex) of its body

  bool operator==(const GuidMap&) const = default;
};

std::string EncodeGuidMap(const GuidMap& m);
// kCorruption naming `where` and the line for a malformed map.
Result<GuidMap> ParseGuidMap(std::string_view text, const std::string& where);

// "folders/<key>/cyrsync.guids"
std::string GuidMapName(const std::string& key);

// The folder's map as of run as_of (0 = latest); an empty map when the archive has none.
Result<GuidMap> LoadGuidMap(Env* env, IndexDb& idx, const std::string& archive,
                            const std::string& key, int64_t as_of = 0);

// The SHA-1 a record's body is archived under: its GUID, else the map's entry for its uid;
// "" when neither names one.
std::string ArchivedSha1(const cyrus::IndexRecord& r, const GuidMap& map);

bool HasGuid(const cyrus::IndexRecord& r);

// The archive entry that holds a record's body as of run as_of (0 = latest); nullopt when the
// archive lacks it (the run that listed it failed underfoot, or an older cyrsync wrote no map).
Result<std::optional<Entry>> ArchivedBody(IndexDb& idx, const cyrus::IndexRecord& r,
                                          const GuidMap& map, int64_t as_of);

}  // namespace cyrsync::snapshot
