// gzip member framing for the snapshot archive (doc/formats/archive.md §Members): members are
// compressed with libdeflate (whole-buffer, several times faster than zlib at the same level)
// and read with zlib (streaming). MemberDeflater and MemberInflater are sans-I/O: bytes in, bytes
// out, one RFC 1952 member at a time, so an archive that is a concatenation of members can be
// walked member by member and a damaged member is reported with its own offset. InflateMember is
// the thin I/O loop that feeds an inflater from a file through a FileCursor. All classes are
// thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"

namespace cyrsync::snapshot {

// Compresses one gzip member (10-byte header with mtime 0, deflate data, CRC32 + ISIZE). The
// input is buffered and compressed in one piece by Finish, so a member costs its uncompressed
// size in memory (plus the compressed output) until then.
class MemberDeflater {
 public:
  // level: 0-9 as zlib's (0 stored, 1 fastest, 9 best); kInvalidArgument otherwise.
  static Result<std::unique_ptr<MemberDeflater>> Create(int level);
  ~MemberDeflater();
  MemberDeflater(const MemberDeflater&) = delete;
  MemberDeflater& operator=(const MemberDeflater&) = delete;

  // Buffers `in` for this member. REQUIRES: not finished.
  Status Add(std::string_view in);
  // Compresses the buffered input into one complete member (header, data, trailer); the output
  // accumulates until TakeOutput().
  Status Finish();
  // Starts a new member with the same level (after Finish, or to discard the current one).
  Status Reset();
  // Moves out the compressed bytes produced so far (none before Finish).
  std::string TakeOutput();
  size_t pending_output() const { return out_.size(); }
  uint64_t total_in() const { return in_.size(); }  // uncompressed bytes of this member
  bool finished() const { return finished_; }

 private:
  struct Compressor;
  explicit MemberDeflater(std::unique_ptr<Compressor> c);

  std::unique_ptr<Compressor> c_;
  std::string in_;
  std::string out_;
  bool finished_ = false;
};

// Decompresses exactly one gzip member and stops at its end, leaving any following bytes
// (the next member) unconsumed.
class MemberInflater {
 public:
  static Result<std::unique_ptr<MemberInflater>> Create();
  ~MemberInflater();
  MemberInflater(const MemberInflater&) = delete;
  MemberInflater& operator=(const MemberInflater&) = delete;

  struct Step {
    size_t consumed = 0;      // input bytes used
    std::string_view output;  // valid until the next call
    bool member_end = false;  // the trailer was read and its CRC32/ISIZE matched
  };
  // One inflate pass over `in`. Consuming nothing and producing nothing means more input is
  // needed. kCorruption (zlib's message, no offset: callers add it) for bad data.
  // REQUIRES: the member has not ended (Reset first to read the next one).
  Result<Step> Next(std::string_view in);
  Status Reset();
  uint64_t total_in() const { return total_in_; }
  uint64_t total_out() const { return total_out_; }

 private:
  struct Z;
  explicit MemberInflater(std::unique_ptr<Z> z);

  std::unique_ptr<Z> z_;
  std::string buf_;
  uint64_t total_in_ = 0, total_out_ = 0;
};

// Sequential buffered reads from a file between a start offset and a limit.
class FileCursor {
 public:
  static constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();
  // REQUIRES: file outlives the cursor.
  FileCursor(ReadableFile* file, uint64_t offset, uint64_t limit = kNoLimit,
             size_t chunk = size_t{256} << 10);
  // The buffered bytes at offset(), reading more when none are buffered; empty at the end of
  // the file or at the limit.
  Result<std::string_view> Peek();
  void Consume(size_t n);
  uint64_t offset() const { return offset_; }
  // Forgets the buffer and continues at `offset` (which may be before or after the current one).
  void Seek(uint64_t offset);

 private:
  ReadableFile* file_;
  uint64_t offset_;
  uint64_t limit_;
  size_t chunk_;
  std::string buf_;
  size_t buf_pos_ = 0;
};

enum class SinkAction { kContinue, kStop };
// Receives a member's uncompressed bytes in order.
using InflateSink = std::function<Result<SinkAction>(std::string_view)>;

struct MemberOutcome {
  Status status;           // ok, or why the member could not be read (errors name its offset)
  bool truncated = false;  // the file ended inside the member (the signature of a torn append)
  bool stopped = false;    // the sink returned kStop; the rest of the member was not read
  uint64_t offset = 0;     // where the member starts
  uint64_t length = 0;     // compressed bytes (complete members only)
  uint64_t uncompressed = 0;
};

// Inflates the member starting at cursor->offset() into sink and leaves the cursor just after
// the member. `inflater` is reset first. Damage is kCorruption "gzip member at offset <n>: ...";
// an error returned by the sink is passed through unchanged.
MemberOutcome InflateMember(FileCursor* cursor, MemberInflater* inflater, const InflateSink& sink);

}  // namespace cyrsync::snapshot
