// Transport: a bidirectional, ordered stream of frames. The TLS Channel is the production
// implementation; MakePipePair gives two connected in-process ends for tests. One thread uses a
// given end at a time; the two ends of a pipe may be used from two threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "common/env.h"
#include "common/status.h"
#include "common/hash.h"
#include "protocol/frame.h"

namespace cyrsync::protocol {

class Transport {
 public:
  virtual ~Transport() = default;
  // May queue the frame; it is written at the latest by Flush, Receive or Close.
  virtual Status Send(uint16_t type, std::string_view payload) = 0;
  virtual Status Flush() { return Status::Ok(); }
  // kUnavailable when the peer closed; kCorruption on a protocol violation.
  virtual Result<Frame> Receive() = 0;
  virtual void Close() = 0;
};

// Two connected ends; frames sent on one are received on the other. Closing either end makes
// the other's Receive return kUnavailable once the queue is drained.
std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>> MakePipePair();

// Receives one frame; an ERROR frame becomes its Status, any type other than `type` is a
// kCorruption protocol error.
Result<Frame> ReceiveExpect(Transport& t, uint16_t type);
Status ExpectOk(Transport& t);
// Sends an ERROR frame carrying status.
void SendError(Transport& t, const Status& status);

// What DATA_END carries. kNone (an empty digest) only where the receiver checks the bytes
// by other means and accepts it (DigestRule::kOptional): the answers to MESSAGES_FETCH, whose
// bodies the snapshot host checks against their GUIDs.
enum class Digest { kSha1, kNone };

// Streams data as DATA frames of at most kDataChunk bytes, then DATA_END with its SHA-1.
Status SendBody(Transport& t, std::string_view data, Digest digest = Digest::kSha1);
// Streams a file from offset 0 to its end the same way; returns the byte count sent.
Result<uint64_t> SendFileBody(Transport& t, ReadableFile& file, Digest digest = Digest::kSha1);

// Streams a file as a librsync delta against signature (the peer's copy), as DELTA_DATA
// frames, then DATA_END with the SHA-1 of the whole new file. Returns the file's byte count.
Result<uint64_t> SendFileDelta(Transport& t, ReadableFile& file, std::string_view signature);

// Receives DATA* DATA_END; every chunk goes to sink. Fails with kCorruption when more than
// max_size bytes arrive or the SHA-1 in DATA_END does not match.
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual Status Write(std::string_view chunk) = 0;
};
// A body may instead arrive as DELTA_DATA* DATA_END when basis (the receiver's current copy,
// basis_size bytes) is given: it is patched, and the SHA-1 is checked on the result.
// sha1_hex, when given, receives the SHA-1 (lower-case hex) of the body as received.
// kOptional: an empty digest in DATA_END is accepted (the caller checks the bytes itself); a
// non-empty one is still checked.
enum class DigestRule { kRequired, kOptional };
Result<uint64_t> ReceiveBody(Transport& t, BodySink& sink, uint64_t max_size,
                             ReadableFile* basis = nullptr, uint64_t basis_size = 0,
                             std::string* sha1_hex = nullptr,
                             DigestRule rule = DigestRule::kRequired);
Result<std::string> ReceiveBodyToString(Transport& t, uint64_t max_size,
                                        std::string* sha1_hex = nullptr,
                                        DigestRule rule = DigestRule::kRequired);

}  // namespace cyrsync::protocol
