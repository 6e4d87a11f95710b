#include "protocol/frame.h"

#include <algorithm>
#include <limits>

#include "common/bytes.h"
#include "common/hash.h"

namespace cyrsync::protocol {

void AppendFrame(std::string* out, uint16_t type, std::string_view payload) {
  const size_t start = out->size();
  out->reserve(start + kFrameHeaderSize + payload.size() + kFrameTrailerSize);
  AppendBE32(out, static_cast<uint32_t>(payload.size()));
  AppendBE16(out, type);
  AppendBE16(out, 0);  // flags
  out->append(payload);
  AppendBE32(out, Crc32(std::string_view(*out).substr(start)));
}

uint32_t AppendFrameHeader(std::string* out, uint16_t type, std::string_view payload) {
  const size_t start = out->size();
  AppendBE32(out, static_cast<uint32_t>(payload.size()));
  AppendBE16(out, type);
  AppendBE16(out, 0);  // flags
  return Crc32(payload, Crc32(std::string_view(*out).substr(start)));
}

std::string EncodeFrame(uint16_t type, std::string_view payload) {
  std::string out;
  AppendFrame(&out, type, payload);
  return out;
}

FrameDecoder::FrameDecoder(size_t max_payload) : max_payload_(max_payload) {}

size_t FrameDecoder::Wanted() const {
  if (buf_.size() < kFrameHeaderSize) {
    return kFrameHeaderSize;
  }
  return kFrameHeaderSize + LoadBE32(buf_, 0) + kFrameTrailerSize;
}

Status FrameDecoder::CheckHeader() const {
  const uint32_t len = LoadBE32(buf_, 0);
  if (len > max_payload_) {
    return CorruptionError("frame payload_len " + std::to_string(len) + " exceeds limit " +
                           std::to_string(max_payload_) + " at stream offset " +
                           std::to_string(frame_start_));
  }
  const uint16_t flags = LoadBE16(buf_, 6);
  if (flags != 0) {
    return CorruptionError("frame flags " + std::to_string(flags) + " are not 0 at stream offset " +
                           std::to_string(frame_start_ + 6));
  }
  return Status::Ok();
}

FrameDecoder::Out FrameDecoder::FinishFrame() {
  const size_t crc_at = buf_.size() - kFrameTrailerSize;
  const uint32_t want = LoadBE32(buf_, crc_at);
  const uint32_t got = Crc32(std::string_view(buf_).substr(0, crc_at));
  if (want != got) {
    return Fail(CorruptionError("frame CRC mismatch at stream offset " +
                                std::to_string(frame_start_ + crc_at) + " (type " +
                                std::to_string(LoadBE16(buf_, 4)) + ")"));
  }
  Out out;
  out.kind = Out::kFrame;
  out.type = LoadBE16(buf_, 4);
  out.payload = buf_.substr(kFrameHeaderSize, crc_at - kFrameHeaderSize);
  buf_.clear();
  frame_start_ = stream_offset_;
  return out;
}

FrameDecoder::Out FrameDecoder::Fail(Status error) {
  error_ = std::move(error);
  buf_.clear();
  buf_.shrink_to_fit();
  Out out;
  out.kind = Out::kError;
  out.error = error_;
  return out;
}

FrameDecoder::Out FrameDecoder::Feed(std::string_view bytes, size_t* consumed) {
  *consumed = 0;
  if (!error_.ok()) {
    return Fail(error_);
  }
  while (*consumed < bytes.size()) {
    const bool had_header = buf_.size() >= kFrameHeaderSize;
    const size_t take = std::min(Wanted() - buf_.size(), bytes.size() - *consumed);
    buf_.append(bytes.substr(*consumed, take));
    *consumed += take;
    stream_offset_ += take;
    if (!had_header && buf_.size() == kFrameHeaderSize) {
      if (Status st = CheckHeader(); !st.ok()) {
        return Fail(std::move(st));
      }
      buf_.reserve(Wanted());
    }
    if (buf_.size() >= kFrameHeaderSize && buf_.size() == Wanted()) {
      return FinishFrame();
    }
  }
  return Out{};
}

PayloadWriter& PayloadWriter::PutU8(uint8_t v) {
  out_.push_back(static_cast<char>(v));
  return *this;
}
PayloadWriter& PayloadWriter::PutU16(uint16_t v) {
  AppendBE16(&out_, v);
  return *this;
}
PayloadWriter& PayloadWriter::PutU32(uint32_t v) {
  AppendBE32(&out_, v);
  return *this;
}
PayloadWriter& PayloadWriter::PutU64(uint64_t v) {
  AppendBE64(&out_, v);
  return *this;
}
PayloadWriter& PayloadWriter::PutI64(int64_t v) { return PutU64(static_cast<uint64_t>(v)); }
PayloadWriter& PayloadWriter::PutString(std::string_view s) {
  PutU32(static_cast<uint32_t>(s.size()));
  out_.append(s);
  return *this;
}
PayloadWriter& PayloadWriter::PutBytes(std::string_view raw) {
  out_.append(raw);
  return *this;
}
std::string PayloadWriter::Take() {
  std::string out = std::move(out_);
  out_.clear();
  return out;
}

Status PayloadReader::Need(size_t n, std::string_view what) const {
  if (n > remaining()) {
    return CorruptionError("payload truncated reading " + std::string(what) + " at offset " +
                           std::to_string(pos_) + ": need " + std::to_string(n) + " bytes, have " +
                           std::to_string(remaining()));
  }
  return Status::Ok();
}

Result<uint8_t> PayloadReader::U8() {
  RETURN_IF_ERROR(Need(1, "u8"));
  return static_cast<uint8_t>(data_[pos_++]);
}
Result<uint16_t> PayloadReader::U16() {
  RETURN_IF_ERROR(Need(2, "u16"));
  const uint16_t v = LoadBE16(data_, pos_);
  pos_ += 2;
  return v;
}
Result<uint32_t> PayloadReader::U32() {
  RETURN_IF_ERROR(Need(4, "u32"));
  const uint32_t v = LoadBE32(data_, pos_);
  pos_ += 4;
  return v;
}
Result<uint64_t> PayloadReader::U64() {
  RETURN_IF_ERROR(Need(8, "u64"));
  const uint64_t v = LoadBE64(data_, pos_);
  pos_ += 8;
  return v;
}
Result<int64_t> PayloadReader::I64() {
  ASSIGN_OR_RETURN(uint64_t v, U64());
  return static_cast<int64_t>(v);
}

Result<std::string> PayloadReader::String(size_t max_len) {
  ASSIGN_OR_RETURN(std::string_view v, StringView(max_len));
  return std::string(v);
}

Result<std::string_view> PayloadReader::StringView(size_t max_len) {
  RETURN_IF_ERROR(Need(4, "string length"));
  const uint32_t len = LoadBE32(data_, pos_);
  if (len > max_len) {
    return CorruptionError("payload string length " + std::to_string(len) + " exceeds limit " +
                           std::to_string(max_len) + " at offset " + std::to_string(pos_));
  }
  if (len > remaining() - 4) {
    return CorruptionError("payload truncated reading string at offset " + std::to_string(pos_) +
                           ": length " + std::to_string(len) + ", have " +
                           std::to_string(remaining() - 4));
  }
  std::string_view out = data_.substr(pos_ + 4, len);
  pos_ += 4 + len;
  return out;
}

Result<std::string> PayloadReader::Bytes(size_t n) {
  RETURN_IF_ERROR(Need(n, "bytes"));
  std::string out(data_.substr(pos_, n));
  pos_ += n;
  return out;
}

Status PayloadReader::ExpectEnd() const {
  if (!AtEnd()) {
    return CorruptionError("payload has " + std::to_string(remaining()) +
                           " trailing bytes at offset " + std::to_string(pos_));
  }
  return Status::Ok();
}

}  // namespace cyrsync::protocol
