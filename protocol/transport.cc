#include "protocol/transport.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>

#include "common/hash.h"
#include "protocol/messages.h"
#include "protocol/rsync_codec.h"

namespace cyrsync::protocol {
namespace {

struct PipeQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Frame> frames;
  bool closed = false;
};

class PipeEnd final : public Transport {
 public:
  PipeEnd(std::shared_ptr<PipeQueue> in, std::shared_ptr<PipeQueue> out)
      : in_(std::move(in)), out_(std::move(out)) {}
  ~PipeEnd() override { Close(); }
  Status Send(uint16_t type, std::string_view payload) override {
    std::lock_guard g(out_->mu);
    if (out_->closed) return UnavailableError("pipe closed");
    out_->frames.push_back(Frame{type, std::string(payload)});
    out_->cv.notify_all();
    return Status::Ok();
  }
  Result<Frame> Receive() override {
    std::unique_lock g(in_->mu);
    in_->cv.wait(g, [&] { return !in_->frames.empty() || in_->closed; });
    if (in_->frames.empty()) return UnavailableError("peer closed the connection");
    Frame f = std::move(in_->frames.front());
    in_->frames.pop_front();
    return f;
  }
  void Close() override {
    for (auto* q : {in_.get(), out_.get()}) {
      std::lock_guard g(q->mu);
      q->closed = true;
      q->cv.notify_all();
    }
  }

 private:
  std::shared_ptr<PipeQueue> in_, out_;
};

class StringSink final : public BodySink {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  Status Write(std::string_view chunk) override {
    out_->append(chunk);
    return Status::Ok();
  }

 private:
  std::string* out_;
};

}  // namespace

std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>> MakePipePair() {
  auto a = std::make_shared<PipeQueue>();
  auto b = std::make_shared<PipeQueue>();
  return {std::make_unique<PipeEnd>(a, b), std::make_unique<PipeEnd>(b, a)};
}

Result<Frame> ReceiveExpect(Transport& t, uint16_t type) {
  ASSIGN_OR_RETURN(Frame f, t.Receive());
  if (f.type == kError) return StatusFromError(f.payload);
  if (f.type != type) {
    return CorruptionError("protocol error: expected message type " + std::to_string(type) +
                           ", got " + std::to_string(f.type));
  }
  return f;
}

Status ExpectOk(Transport& t) { return ReceiveExpect(t, kOk).status(); }

void SendError(Transport& t, const Status& status) { (void)t.Send(kError, EncodeStatus(status)); }

namespace {

// The SHA-1 of what a sender streams, or nothing when it sends no digest.
class SendDigest {
 public:
  explicit SendDigest(Digest d) : on_(d == Digest::kSha1) {}
  void Update(std::string_view chunk) {
    if (on_) h_.Update(chunk);
  }
  Status SendEnd(Transport& t) {
    return t.Send(kDataEnd, EncodeString(on_ ? HexEncode(h_.Finish()) : ""));
  }

 private:
  bool on_;
  Sha1Hasher h_;
};

}  // namespace

Status SendBody(Transport& t, std::string_view data, Digest digest) {
  SendDigest h(digest);
  while (!data.empty()) {
    size_t n = std::min(data.size(), kDataChunk);
    h.Update(data.substr(0, n));
    RETURN_IF_ERROR(t.Send(kData, data.substr(0, n)));
    data.remove_prefix(n);
  }
  return h.SendEnd(t);
}

// One read buffer per thread: a fresh buffer per message file cost a memset each time. Left
// uninitialized, so a thread that only ever sends small files touches (and keeps resident) only
// the pages its reads filled. A quarter of kDataChunk: a large message costs each sending thread
// 256 KiB of resident buffer, not 1 MiB, for four times as many (still large) DATA frames.
constexpr size_t kReadChunk = kDataChunk / 4;

std::span<char> ChunkBuffer() {
  thread_local std::unique_ptr<char[]> buf(new char[kReadChunk]);
  return {buf.get(), kReadChunk};
}

Result<uint64_t> SendFileBody(Transport& t, ReadableFile& file, Digest digest) {
  SendDigest h(digest);
  const std::span<char> buf = ChunkBuffer();
  uint64_t off = 0;
  while (true) {
    ASSIGN_OR_RETURN(size_t n, file.ReadAt(off, buf));
    if (n == 0) break;
    std::string_view chunk(buf.data(), n);
    h.Update(chunk);
    RETURN_IF_ERROR(t.Send(kData, chunk));
    off += n;
  }
  RETURN_IF_ERROR(h.SendEnd(t));
  return off;
}

namespace {

// Collects a body's plain bytes: straight from DATA frames, or patched from DELTA_DATA.
class BodyReceiver {
 public:
  BodyReceiver(BodySink& sink, uint64_t max, ReadableFile* basis, uint64_t basis_size)
      : sink_(sink), max_(max), basis_(basis), basis_size_(basis_size) {}

  Status OnFrame(const Frame& f) {
    bool delta = f.type == kDeltaData;
    if (mode_ == Mode::kUnknown) {
      mode_ = delta ? Mode::kDelta : Mode::kPlain;
      if (delta) RETURN_IF_ERROR(StartPatch());
    }
    if (delta != (mode_ == Mode::kDelta)) return CorruptionError("body mixes DATA and DELTA_DATA");
    if (!delta) return Emit(f.payload);
    std::string out;
    ASSIGN_OR_RETURN(bool done, patch_->Feed(f.payload, false, &out));
    (void)done;
    return Emit(out);
  }

  // got: the SHA-1 of the bytes received.
  Result<uint64_t> Finish(std::string_view want, DigestRule rule, std::string* got) {
    if (mode_ == Mode::kDelta) {
      std::string out;
      ASSIGN_OR_RETURN(bool done, patch_->Feed("", true, &out));
      if (!done) return CorruptionError("delta ended before the patch was complete");
      RETURN_IF_ERROR(Emit(out));
    }
    *got = HexEncode(hash_.Finish());
    if (want.empty() && rule == DigestRule::kOptional && mode_ != Mode::kDelta) return total_;
    if (want != *got) {
      return CorruptionError("body checksum mismatch after " + std::to_string(total_) + " bytes");
    }
    return total_;
  }

 private:
  enum class Mode { kUnknown, kPlain, kDelta };
  Status StartPatch() {
    if (basis_ == nullptr) return CorruptionError("delta body without a basis on this side");
    ASSIGN_OR_RETURN(patch_, RsyncJob::Patch(basis_, basis_size_));
    return Status::Ok();
  }
  Status Emit(std::string_view bytes) {
    total_ += bytes.size();
    if (total_ > max_) {
      return CorruptionError("body exceeds its limit of " + std::to_string(max_) + " bytes");
    }
    hash_.Update(bytes);
    return sink_.Write(bytes);
  }

  BodySink& sink_;
  uint64_t max_;
  ReadableFile* basis_;
  uint64_t basis_size_;
  Mode mode_ = Mode::kUnknown;
  std::unique_ptr<RsyncJob> patch_;
  Sha1Hasher hash_;
  uint64_t total_ = 0;
};

}  // namespace

Result<uint64_t> ReceiveBody(Transport& t, BodySink& sink, uint64_t max_size, ReadableFile* basis,
                             uint64_t basis_size, std::string* sha1_hex, DigestRule rule) {
  BodyReceiver rx(sink, max_size, basis, basis_size);
  while (true) {
    ASSIGN_OR_RETURN(Frame f, t.Receive());
    if (f.type == kError) return StatusFromError(f.payload);
    if (f.type == kDataEnd) {
      ASSIGN_OR_RETURN(std::string want, DecodeString(f.payload));
      std::string got;
      auto n = rx.Finish(want, rule, &got);
      if (n.ok() && sha1_hex != nullptr) *sha1_hex = std::move(got);
      return n;
    }
    if (f.type != kData && f.type != kDeltaData) {
      return CorruptionError("protocol error: expected DATA, got type " + std::to_string(f.type));
    }
    RETURN_IF_ERROR(rx.OnFrame(f));
  }
}

Result<uint64_t> SendFileDelta(Transport& t, ReadableFile& file, std::string_view signature) {
  ASSIGN_OR_RETURN(auto job, RsyncJob::Delta(signature));
  Sha1Hasher h;
  const std::span<char> buf = ChunkBuffer();
  std::string out;
  uint64_t off = 0;
  bool done = false;
  while (!done) {
    ASSIGN_OR_RETURN(size_t n, file.ReadAt(off, buf));
    std::string_view chunk(buf.data(), n);
    h.Update(chunk);
    off += n;
    ASSIGN_OR_RETURN(done, job->Feed(chunk, n == 0, &out));
    while (out.size() >= kDataChunk || (done && !out.empty())) {
      size_t m = std::min(out.size(), kDataChunk);
      RETURN_IF_ERROR(t.Send(kDeltaData, std::string_view(out).substr(0, m)));
      out.erase(0, m);
    }
    if (n == 0 && !done) return InternalError("rsync delta did not finish");
  }
  RETURN_IF_ERROR(t.Send(kDataEnd, EncodeString(HexEncode(h.Finish()))));
  return off;
}

Result<std::string> ReceiveBodyToString(Transport& t, uint64_t max_size, std::string* sha1_hex,
                                        DigestRule rule) {
  std::string out;
  StringSink sink(&out);
  ASSIGN_OR_RETURN(uint64_t n, ReceiveBody(t, sink, max_size, nullptr, 0, sha1_hex, rule));
  (void)n;
  return out;
}

}  // namespace cyrsync::protocol
