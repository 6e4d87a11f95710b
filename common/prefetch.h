// Reads message files ahead of the session thread that sends them: a few reader threads open
// and stat files, at most `window` files ahead of the consumer, so a cold disk serves several
// reads at once instead of one file after another. The reads of small files go to one
// submitter thread that hands them to the kernel in batches through a ReadRing (io_uring);
// without a ring (the kernel refuses one, or a test double's file has no descriptor) the reader
// threads read them with pread. Files larger than kMaxPrefetchBytes are only opened ahead; the
// consumer streams them. What is read ahead is bounded by count (`window`) and by bytes
// (kMaxAheadBytes, exceeded by at most one file per reader), so a folder of large attachments
// costs a few megabytes, not window x kMaxPrefetchBytes.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "common/read_ring.h"

namespace cyrsync {

class Prefetcher {
 public:
  static constexpr uint64_t kMaxPrefetchBytes = 1 << 20;
  static constexpr uint64_t kMaxAheadBytes = 8 << 20;

  struct Item {
    Status status;                        // kNotFound: the file is gone
    std::string data;                     // the whole file, when small
    std::unique_ptr<ReadableFile> large;  // open file to stream, when larger
  };

  // On a cold disk, eight readers with up to 64 files in flight took a third less time than four
  // with 32 (a first snapshot of 300k messages, 2 cores); 16 or 32 readers were slower again.
  // batch_reads: use a ReadRing when the kernel offers one.
  Prefetcher(Env* env, std::vector<std::string> paths, int threads = 8, size_t window = 64,
             bool batch_reads = true);
  ~Prefetcher();  // stops the readers and the submitter and waits for them
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Blocks until paths[i] is read. REQUIRES: called for i = 0, 1, 2, ... in order.
  Item Take(size_t i);

  bool batching() const { return ring_ != nullptr; }

 private:
  // An open small file waiting for, or in, the ring. The item's buffer does not move while the
  // kernel writes into it (a Flight lives in a slot of flights_ until its completion).
  struct Flight {
    size_t index = 0;
    std::unique_ptr<ReadableFile> file;
    uint64_t size = 0;  // at the stat
    Item item;
  };

  void ReaderLoop();
  void SubmitterLoop();
  Item Open(const std::string& path, std::unique_ptr<ReadableFile>* small, uint64_t* size);
  void Deliver(size_t i, Item item);
  // Moves opened files into free flight slots and submits them; false when the ring failed.
  bool Launch(std::vector<Flight>&& batch);
  void Complete(size_t slot, int result);
  void AbandonRing();

  Env* env_;
  std::vector<std::string> paths_;
  size_t window_;
  std::unique_ptr<ReadRing> ring_;
  std::mutex mu_;
  // Separate wake-ups, so that a file read wakes only the consumer waiting for that file and the
  // readers are woken only when half the window is free: with warm caches a read takes
  // microseconds, and wake-ups per file made context switches a large share of the daemon's CPU.
  std::condition_variable ready_;           // the consumer: slots_[taken_] was filled
  std::condition_variable room_;            // readers: half the window is free, or stop_
  std::condition_variable queued_;          // the submitter: waiting_ has files, or the end
  std::vector<std::optional<Item>> slots_;  // guarded by mu_
  std::deque<Flight> waiting_;              // opened, not yet in the ring; guarded by mu_
  size_t next_ = 0;                         // next index a reader claims; guarded by mu_
  size_t taken_ = 0;                        // the consumer's position; guarded by mu_
  size_t readers_left_ = 0;                 // guarded by mu_
  uint64_t ahead_bytes_ = 0;                // buffers claimed, not yet taken; guarded by mu_
  std::vector<uint64_t> charged_;           // per index, its share of ahead_bytes_; by mu_
  bool stop_ = false;                       // guarded by mu_
  // The submitter's own: flights in the ring, by slot (the ring's tag), and the free slots.
  std::vector<std::optional<Flight>> flights_;
  std::vector<size_t> free_;
  std::vector<std::thread> readers_;
  std::thread submitter_;
};

}  // namespace cyrsync
