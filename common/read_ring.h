// Reads of many small files handed to the kernel together through an io_uring: one system call
// submits a batch, and the block layer sees the batch at once (one notification of a virtual
// disk per batch instead of per file, and adjacent reads merged). On a cold spool this cut the
// kernel CPU of reading 100k message files by a third against eight threads doing pread
// (bench/README.md). Not thread-safe: one thread queues, submits and waits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/status.h"

namespace cyrsync {

class ReadRing {
 public:
  // nullptr when the kernel refuses a ring (no io_uring, or disabled by sysctl or seccomp):
  // callers then read with pread.
  static std::unique_ptr<ReadRing> Create(unsigned depth);
  ~ReadRing();
  ReadRing(const ReadRing&) = delete;
  ReadRing& operator=(const ReadRing&) = delete;

  unsigned depth() const { return depth_; }
  unsigned in_flight() const { return in_flight_; }   // queued or submitted, not yet completed
  unsigned submitted() const { return in_flight_ - queued_; }

  // Queues a read of len bytes from offset 0 of fd into buf. buf must stay valid until the
  // completion for tag is returned. REQUIRES: in_flight() < depth().
  void Queue(int fd, char* buf, size_t len, uint64_t tag);
  // Hands every queued read to the kernel. On an error, reads that were not handed over stay
  // queued and never complete: the caller waits for submitted() completions, then reads the
  // rest itself and drops the ring.
  Status Submit();

  struct Completion {
    uint64_t tag;
    int result;  // bytes read, or -errno
  };
  // Waits for the next completion. REQUIRES: submitted() > 0.
  Result<Completion> Wait();

 private:
  struct Ring;
  ReadRing(std::unique_ptr<Ring> ring, unsigned depth);
  std::unique_ptr<Ring> ring_;
  unsigned depth_;
  unsigned in_flight_ = 0;
  unsigned queued_ = 0;
};

}  // namespace cyrsync
