// cyrus.index (and 2.3 cyrus.expunge) reader for every minor version a 3.x server may hold:
// 6-10, 12-17, 19 and 20 (cyrus-formats.md §1, §4). Sans-I/O; untrusted input: every offset and
// count is bounds-checked, header and record CRCs are verified (v12+).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cyrsync::cyrus {

// system_flags bits (§6.1).
inline constexpr uint32_t kFlagAnswered = 0x1;
inline constexpr uint32_t kFlagFlagged = 0x2;
inline constexpr uint32_t kFlagDeleted = 0x4;
inline constexpr uint32_t kFlagDraft = 0x8;
inline constexpr uint32_t kFlagSeen = 0x10;
inline constexpr uint32_t kFlagNeedsCleanup = 0x10000000;
inline constexpr uint32_t kFlagArchived = 0x20000000;
inline constexpr uint32_t kFlagUnlinked = 0x40000000;
inline constexpr uint32_t kFlagExpunged = 0x80000000;

// Header options (§6.2).
inline constexpr uint32_t kOptMailboxDeleted = 0x80000000;

struct IndexHeader {
  uint32_t generation_no = 0;
  uint32_t format = 0;
  uint32_t minor_version = 0;
  uint32_t start_offset = 0;
  uint32_t record_size = 0;
  uint32_t num_records = 0;
  uint32_t last_uid = 0;
  uint32_t uidvalidity = 0;
  uint32_t options = 0;
  uint32_t exists = 0;
  uint64_t highestmodseq = 0;
  uint32_t header_file_crc = 0;  // v12+; 0 before
  uint64_t quota_mailbox_used = 0;
};

struct IndexRecord {
  uint32_t uid = 0;
  int64_t internaldate = 0;  // seconds since the epoch (v20 nanoseconds are converted)
  uint64_t size = 0;
  uint32_t system_flags = 0;
  std::array<uint32_t, 4> user_flags{};
  std::array<uint8_t, 20> guid{};  // all zero = unknown
  uint64_t modseq = 0;

  // The message file <uid>. exists for this record (UNLINKED clear; §5.1).
  bool HasFile() const { return (system_flags & kFlagUnlinked) == 0; }
  bool Archived() const { return (system_flags & kFlagArchived) != 0; }
  std::string GuidHex() const;
};

struct IndexFile {
  IndexHeader header;
  std::vector<IndexRecord> records;  // file order (ascending UID for cyrus.index)
};

struct IndexParseOptions {
  bool verify_crc = true;  // header and record CRCs (v12+)
};

// Parses a whole cyrus.index or cyrus.expunge image. Errors are kCorruption with
// "<path>: <what> at offset <n>" (bad version, truncated header/record, CRC mismatch, sizes
// that disagree with the version's template).
Result<IndexFile> ParseIndex(std::string_view bytes, std::string_view path,
                             const IndexParseOptions& opts = {});

// Only the header (the first start_offset bytes suffice).
Result<IndexHeader> ParseIndexHeader(std::string_view bytes, std::string_view path,
                                     const IndexParseOptions& opts = {});

}  // namespace cyrsync::cyrus
