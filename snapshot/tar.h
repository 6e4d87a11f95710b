// Sans-I/O tar codec for the snapshot archive (doc/formats/archive.md §Tar entries): a POSIX
// ustar writer for regular files and symlinks, with PAX extended headers ('x') for what ustar
// cannot hold (names or link targets over 100 bytes, sizes or mtimes outside 11 octal digits),
// and a streaming parser for the same subset. Neither touches a file. The parser takes
// untrusted bytes: checksums are verified, every size is bounds-checked, and errors are
// kCorruption naming the stream offset. Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "snapshot/archive.h"

namespace cyrsync::snapshot {

inline constexpr size_t kTarBlockSize = 512;
// A PAX extended header larger than this is treated as corruption (ours are a few hundred bytes).
inline constexpr uint64_t kMaxPaxHeaderSize = uint64_t{1} << 20;

struct TarHeader {
  std::string name;
  EntryKind kind = EntryKind::kFile;
  std::string link_target;  // symlinks
  uint64_t size = 0;        // 0 for symlinks
  int64_t mtime = 0;        // seconds since the epoch, UTC
  uint32_t mode = 0600;     // permission bits (07777)
};

// The header blocks of one entry (a PAX header and its data when needed, then the ustar
// header); the caller appends `h.size` data bytes and then TarPadding(h.size).
// kInvalidArgument for an empty name, an empty symlink target, a NUL byte in either, or a
// symlink with a non-zero size.
Result<std::string> EncodeTarHeader(const TarHeader& h);

// Zero bytes that pad `size` data bytes to the next block boundary.
std::string_view TarPadding(uint64_t size);

// Streaming parser: feed it any split of the stream and it reports headers, data chunks and
// entry ends. Zero (end-of-archive) blocks are corruption: the archive never writes them.
class TarParser {
 public:
  enum class Event {
    kNeedMore,  // everything given was consumed; feed more
    kHeader,    // header() holds the next entry; its data starts at data_offset()
    kData,      // Step::data is the next piece of the current entry's data
    kEntryEnd,  // the current entry's data and padding are complete
  };
  struct Step {
    Event event = Event::kNeedMore;
    size_t consumed = 0;    // bytes of the input used by this step
    std::string_view data;  // kData: points into the input
  };

  // base_offset: the stream offset of the first byte fed (used in error messages only).
  explicit TarParser(uint64_t base_offset = 0);

  // Consumes a prefix of `in` and reports one event. Call again with the rest of the input;
  // an empty input only returns kNeedMore (or the pending kEntryEnd of an empty entry).
  Result<Step> Next(std::string_view in);

  const TarHeader& header() const { return header_; }
  uint64_t data_offset() const { return data_offset_; }  // relative to the stream start
  uint64_t offset() const { return pos_; }               // next byte, relative to the start
  // True between entries: no partial header, data or padding is pending.
  bool AtEntryBoundary() const;

 private:
  enum class State { kHeader, kPaxData, kData, kPadding, kEntryEnd };
  Result<Step> FillHeader(std::string_view in);
  Result<Step> FillPax(std::string_view in);
  Result<Step> TakeData(std::string_view in);
  Result<Step> SkipPadding(std::string_view in);
  Status ParseBlock();
  Status ApplyPax(std::string_view records);
  Status Corrupt(const std::string& what, uint64_t at) const;

  State state_ = State::kHeader;
  uint64_t base_;
  uint64_t pos_ = 0;
  uint64_t block_start_ = 0;  // where the header block being filled starts
  std::string buf_;           // partial header block or PAX data
  uint64_t pax_size_ = 0;     // PAX data bytes expected (padded to blocks)
  TarHeader pax_;             // overrides from a preceding PAX header
  bool has_pax_path_ = false, has_pax_link_ = false, has_pax_size_ = false, has_pax_mtime_ = false;
  TarHeader header_;
  uint64_t data_offset_ = 0;
  uint64_t remaining_ = 0;  // data bytes of the current entry still to come
  uint64_t pad_ = 0;        // padding bytes still to skip
};

}  // namespace cyrsync::snapshot
