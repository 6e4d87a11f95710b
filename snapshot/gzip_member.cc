#include "snapshot/gzip_member.h"

#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>

namespace cyrsync::snapshot {
namespace {

// windowBits 15 plus 16: a gzip (RFC 1952) wrapper instead of zlib's. 16 (not 32, auto-detect)
// makes a zlib-wrapped stream an error rather than accepted.
constexpr int kGzipWindowBits = 15 + 16;
// Input buffer capacity a deflater keeps across members (members are cut at about 4 MiB).
constexpr size_t kKeepInputCapacity = size_t{16} << 20;
constexpr size_t kInflateBuf = size_t{64} << 10;
// zlib counts in uInt: feed it at most this much at a time.
constexpr size_t kMaxZChunk = size_t{1} << 30;

std::string ZMessage(const z_stream& s, int rc) {
  if (s.msg != nullptr) return s.msg;
  return "zlib error " + std::to_string(rc);
}

}  // namespace

struct MemberDeflater::Compressor {
  libdeflate_compressor* c = nullptr;
  ~Compressor() { libdeflate_free_compressor(c); }
};

MemberDeflater::MemberDeflater(std::unique_ptr<Compressor> c) : c_(std::move(c)) {}
MemberDeflater::~MemberDeflater() = default;

Result<std::unique_ptr<MemberDeflater>> MemberDeflater::Create(int level) {
  if (level < 0 || level > 9) {
    return InvalidArgumentError("gzip: compression level " + std::to_string(level));
  }
  auto c = std::make_unique<Compressor>();
  c->c = libdeflate_alloc_compressor(level);
  if (c->c == nullptr) {
    return InternalError("gzip: cannot allocate a compressor for level " + std::to_string(level));
  }
  return std::unique_ptr<MemberDeflater>(new MemberDeflater(std::move(c)));
}

Status MemberDeflater::Add(std::string_view in) {
  if (finished_) return InternalError("gzip: Add after Finish");
  in_.append(in);
  return Status::Ok();
}

Status MemberDeflater::Finish() {
  if (finished_) return InternalError("gzip: Finish twice");
  const size_t bound = libdeflate_gzip_compress_bound(c_->c, in_.size());
  const size_t old = out_.size();
  out_.resize(old + bound);
  const size_t n =
      libdeflate_gzip_compress(c_->c, in_.data(), in_.size(), out_.data() + old, bound);
  if (n == 0) return InternalError("gzip: compressed member exceeds its bound");
  out_.resize(old + n);
  finished_ = true;
  return Status::Ok();
}

Status MemberDeflater::Reset() {
  // A member that held one very large entry does not keep its buffer for the following ones.
  if (in_.capacity() > kKeepInputCapacity) {
    std::string().swap(in_);
  } else {
    in_.clear();
  }
  out_.clear();
  finished_ = false;
  return Status::Ok();
}

std::string MemberDeflater::TakeOutput() {
  std::string out;
  out.swap(out_);
  return out;
}

struct MemberInflater::Z {
  z_stream s{};
  ~Z() { inflateEnd(&s); }
};

MemberInflater::MemberInflater(std::unique_ptr<Z> z) : z_(std::move(z)), buf_(kInflateBuf, '\0') {}
MemberInflater::~MemberInflater() = default;

Result<std::unique_ptr<MemberInflater>> MemberInflater::Create() {
  auto z = std::make_unique<Z>();
  int rc = inflateInit2(&z->s, kGzipWindowBits);
  if (rc != Z_OK) return InternalError("gzip: inflateInit2: " + ZMessage(z->s, rc));
  return std::unique_ptr<MemberInflater>(new MemberInflater(std::move(z)));
}

Status MemberInflater::Reset() {
  int rc = inflateReset(&z_->s);
  if (rc != Z_OK) return InternalError("gzip: inflateReset: " + ZMessage(z_->s, rc));
  total_in_ = total_out_ = 0;
  return Status::Ok();
}

Result<MemberInflater::Step> MemberInflater::Next(std::string_view in) {
  z_stream& s = z_->s;
  size_t n = std::min(in.size(), kMaxZChunk);
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  s.avail_in = static_cast<uInt>(n);
  s.next_out = reinterpret_cast<Bytef*>(buf_.data());
  s.avail_out = static_cast<uInt>(buf_.size());
  int rc = inflate(&s, Z_NO_FLUSH);
  Step step;
  step.consumed = n - s.avail_in;
  step.output = std::string_view(buf_.data(), buf_.size() - s.avail_out);
  total_in_ += step.consumed;
  total_out_ += step.output.size();
  switch (rc) {
    case Z_OK:
    case Z_BUF_ERROR:  // no progress possible: more input is needed
      return step;
    case Z_STREAM_END:
      step.member_end = true;
      return step;
    default:
      return CorruptionError(ZMessage(s, rc));
  }
}

FileCursor::FileCursor(ReadableFile* file, uint64_t offset, uint64_t limit, size_t chunk)
    : file_(file), offset_(offset), limit_(limit), chunk_(chunk) {}

Result<std::string_view> FileCursor::Peek() {
  if (buf_pos_ < buf_.size()) return std::string_view(buf_).substr(buf_pos_);
  if (offset_ >= limit_) return std::string_view();
  size_t want = static_cast<size_t>(std::min<uint64_t>(chunk_, limit_ - offset_));
  buf_.resize(want);
  buf_pos_ = 0;
  ASSIGN_OR_RETURN(size_t got, file_->ReadAt(offset_, std::span<char>(buf_.data(), want)));
  buf_.resize(got);
  return std::string_view(buf_);
}

void FileCursor::Consume(size_t n) {
  buf_pos_ += n;
  offset_ += n;
}

void FileCursor::Seek(uint64_t offset) {
  buf_.clear();
  buf_pos_ = 0;
  offset_ = offset;
}

namespace {

std::string MemberContext(uint64_t offset) {
  return "gzip member at offset " + std::to_string(offset);
}

}  // namespace

MemberOutcome InflateMember(FileCursor* cursor, MemberInflater* inflater, const InflateSink& sink) {
  MemberOutcome out;
  out.offset = cursor->offset();
  out.status = inflater->Reset();
  while (out.status.ok()) {
    auto in = cursor->Peek();
    if (!in.ok()) {
      out.status = in.error();
      break;
    }
    auto step = inflater->Next(*in);
    if (!step.ok()) {
      out.status = step.error().WithContext(MemberContext(out.offset));
      break;
    }
    cursor->Consume(step->consumed);
    if (!step->output.empty()) {
      auto action = sink(step->output);
      if (!action.ok()) {
        out.status = action.error();
        break;
      }
      if (*action == SinkAction::kStop) {
        out.stopped = true;
        break;
      }
    }
    if (step->member_end) {
      out.length = inflater->total_in();
      break;
    }
    if (in->empty() && step->consumed == 0 && step->output.empty()) {
      out.truncated = true;
      out.status = CorruptionError("truncated " + MemberContext(out.offset) + " (file ends at " +
                                   std::to_string(cursor->offset()) + ")");
    }
  }
  out.uncompressed = inflater->total_out();
  return out;
}

}  // namespace cyrsync::snapshot
