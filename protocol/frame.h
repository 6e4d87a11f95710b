// Frame layer of the cyrsync wire protocol (doc/formats/protocol.md): a sans-I/O encoder and an
// incremental decoder, plus bounds-checked builders/readers for message payloads. No sockets or
// files here. FrameDecoder, PayloadWriter and PayloadReader are thread-compatible (one thread at
// a time per object).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cyrsync::protocol {

inline constexpr size_t kFrameHeaderSize = 8;   // payload_len u32, type u16, flags u16
inline constexpr size_t kFrameTrailerSize = 4;  // CRC32 over header + payload
inline constexpr size_t kDefaultMaxPayload = size_t{8} << 20;

struct Frame {
  uint16_t type = 0;
  std::string payload;
};

// Returns header + payload + CRC32 for one frame with flags 0.
// REQUIRES: payload.size() <= UINT32_MAX (senders enforce their peer's far smaller limit).
std::string EncodeFrame(uint16_t type, std::string_view payload);
// Appends the encoded frame to *out (no temporary copy of the payload).
void AppendFrame(std::string* out, uint16_t type, std::string_view payload);
// The same frame in three pieces, for a sender that writes a large payload from its own buffer:
// appends the header to *out and returns the trailer (the frame's CRC32 over header + payload).
uint32_t AppendFrameHeader(std::string* out, uint16_t type, std::string_view payload);

// Incremental decoder over a byte stream. Feed it whatever bytes arrived; it yields at most one
// frame per call and reports how many of the given bytes it used, so the caller feeds the rest
// again. A frame whose payload_len exceeds max_payload or whose flags are non-zero is rejected as
// soon as its 8-byte header is complete, before any payload byte is buffered. Errors are
// kCorruption naming the stream offset; after an error the decoder stays failed and consumes
// nothing.
class FrameDecoder {
 public:
  struct Out {
    enum Kind { kNeedMore, kFrame, kError } kind = kNeedMore;
    uint16_t type = 0;    // kFrame only
    std::string payload;  // kFrame only
    Status error;         // kError only
  };

  explicit FrameDecoder(size_t max_payload = kDefaultMaxPayload);

  // Consumes a prefix of bytes and sets *consumed to its length.
  //   kNeedMore: every byte was consumed and no frame is complete yet.
  //   kFrame:    one frame completed; *consumed may be less than bytes.size().
  //   kError:    the stream is corrupt; *consumed counts the bytes used before the error.
  // REQUIRES: consumed != nullptr.
  Out Feed(std::string_view bytes, size_t* consumed);

  // Bytes of the stream consumed so far (the offset errors are reported against).
  uint64_t stream_offset() const { return stream_offset_; }
  // True when no partial frame is buffered (a clean place for the stream to end).
  bool AtFrameBoundary() const { return buf_.empty() && error_.ok(); }

 private:
  size_t Wanted() const;
  Status CheckHeader() const;
  Out FinishFrame();
  Out Fail(Status error);

  const size_t max_payload_;
  std::string buf_;           // the partial frame, header first
  uint64_t frame_start_ = 0;  // stream offset of buf_[0]
  uint64_t stream_offset_ = 0;
  Status error_;
};

// Builds a message payload. Integers are big-endian; strings are a u32 length then the bytes.
class PayloadWriter {
 public:
  PayloadWriter& PutU8(uint8_t v);
  PayloadWriter& PutU16(uint16_t v);
  PayloadWriter& PutU32(uint32_t v);
  PayloadWriter& PutU64(uint64_t v);
  PayloadWriter& PutI64(int64_t v);  // two's complement, as a u64
  // REQUIRES: s.size() <= UINT32_MAX.
  PayloadWriter& PutString(std::string_view s);
  PayloadWriter& PutBytes(std::string_view raw);  // no length prefix
  size_t size() const { return out_.size(); }
  // Returns the payload and leaves the writer empty.
  std::string Take();

 private:
  std::string out_;
};

// Reads a payload built by PayloadWriter. Every read is bounds-checked: reading past the end, or a
// string longer than its limit, returns kCorruption naming the payload offset and leaves the
// position unchanged. The viewed bytes must outlive the reader.
class PayloadReader {
 public:
  explicit PayloadReader(std::string_view payload) : data_(payload) {}

  Result<uint8_t> U8();
  Result<uint16_t> U16();
  Result<uint32_t> U32();
  Result<uint64_t> U64();
  Result<int64_t> I64();
  // A u32 length then that many bytes; kCorruption when the length exceeds max_len.
  Result<std::string> String(size_t max_len = size_t{1} << 20);
  // String without the copy: a view into the payload.
  Result<std::string_view> StringView(size_t max_len = size_t{1} << 20);
  // Exactly n raw bytes.
  Result<std::string> Bytes(size_t n);

  bool AtEnd() const { return pos_ == data_.size(); }
  size_t offset() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  // OK when every byte was read; kCorruption naming the count of trailing bytes otherwise.
  Status ExpectEnd() const;

 private:
  Status Need(size_t n, std::string_view what) const;

  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace cyrsync::protocol
