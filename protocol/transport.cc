#include "protocol/transport.h"

#include <condition_variable>
#include <deque>
#include <mutex>

#include "common/hash.h"
#include "protocol/messages.h"

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

Status SendBody(Transport& t, std::string_view data) {
  Sha1Hasher h;
  while (!data.empty()) {
    size_t n = std::min(data.size(), kDataChunk);
    h.Update(data.substr(0, n));
    RETURN_IF_ERROR(t.Send(kData, data.substr(0, n)));
    data.remove_prefix(n);
  }
  auto d = h.Finish();
  return t.Send(kDataEnd, EncodeString(HexEncode(
                              std::string_view(reinterpret_cast<const char*>(d.data()), d.size()))));
}

Result<uint64_t> SendFileBody(Transport& t, ReadableFile& file) {
  Sha1Hasher h;
  std::string buf(kDataChunk, '\0');
  uint64_t off = 0;
  while (true) {
    ASSIGN_OR_RETURN(size_t n, file.ReadAt(off, std::span<char>(buf.data(), buf.size())));
    if (n == 0) break;
    std::string_view chunk(buf.data(), n);
    h.Update(chunk);
    RETURN_IF_ERROR(t.Send(kData, chunk));
    off += n;
  }
  auto d = h.Finish();
  RETURN_IF_ERROR(t.Send(kDataEnd, EncodeString(HexEncode(std::string_view(
                                       reinterpret_cast<const char*>(d.data()), d.size())))));
  return off;
}

Result<uint64_t> ReceiveBody(Transport& t, BodySink& sink, uint64_t max_size) {
  Sha1Hasher h;
  uint64_t total = 0;
  while (true) {
    ASSIGN_OR_RETURN(Frame f, t.Receive());
    if (f.type == kError) return StatusFromError(f.payload);
    if (f.type == kDataEnd) {
      ASSIGN_OR_RETURN(std::string want, DecodeString(f.payload));
      auto d = h.Finish();
      std::string got =
          HexEncode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
      if (want != got) return CorruptionError("body checksum mismatch after " +
                                              std::to_string(total) + " bytes");
      return total;
    }
    if (f.type != kData) {
      return CorruptionError("protocol error: expected DATA, got type " + std::to_string(f.type));
    }
    total += f.payload.size();
    if (total > max_size) {
      return CorruptionError("body exceeds its limit of " + std::to_string(max_size) + " bytes");
    }
    h.Update(f.payload);
    RETURN_IF_ERROR(sink.Write(f.payload));
  }
}

Result<std::string> ReceiveBodyToString(Transport& t, uint64_t max_size) {
  std::string out;
  StringSink sink(&out);
  ASSIGN_OR_RETURN(uint64_t n, ReceiveBody(t, sink, max_size));
  (void)n;
  return out;
}

}  // namespace cyrsync::protocol
