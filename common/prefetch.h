// Reads files ahead of the thread that consumes them, in order. A few reader threads each claim a
// run of consecutive files, open them one after another, and hand the reads of the small ones to
// the kernel together through the thread's own ReadRing (io_uring). Message files written one
// after another sit in consecutive inodes and blocks, so a run costs few inode-table reads and
// its data reads reach the disk together. On a cold spool of 1M message files this took half the
// kernel CPU of eight threads each doing open + pread per file, and half the wall time
// (bench/README.md, prefetch_bench). Without a ring (the kernel refuses one, or a test double's
// file has no descriptor) the readers read with pread.
//
// Files larger than kMaxPrefetchBytes are only opened ahead; the consumer streams them. What is
// read ahead is bounded by count (`window`) and by bytes (kMaxAheadBytes, exceeded by at most
// one batch of kBatchBytes per reader), so a folder of large attachments costs a few megabytes.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "common/read_ring.h"
#include "common/status.h"

namespace cyrsync {

class Prefetcher {
 public:
  static constexpr uint64_t kMaxPrefetchBytes = 1 << 20;
  static constexpr uint64_t kMaxAheadBytes = 8 << 20;
  // A reader submits its reads when they hold this many bytes, or at the end of its run.
  static constexpr uint64_t kBatchBytes = 1 << 20;
  static constexpr size_t kMaxRun = 256;  // files a reader claims at once, at most

  struct Item {
    Status status;                        // kNotFound: the file is gone
    std::string data;                     // the whole file, when small
    std::unique_ptr<ReadableFile> large;  // open file to stream, when larger
  };

  // threads readers, each claiming up to `run` consecutive files, at most `window` files ahead
  // of the consumer. batch_reads: use a ReadRing per reader when the kernel offers one.
  Prefetcher(Env* env, std::vector<std::string> paths, int threads = 4, size_t window = 128,
             bool batch_reads = true, size_t run = 32);
  ~Prefetcher();  // stops the readers and waits for them
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Blocks until paths[i] is read. REQUIRES: called for i = 0, 1, 2, ... in order.
  Item Take(size_t i);

  bool batching() const { return batching_; }

 private:
  // An opened file of a batch; item.data is the read buffer (stat size + 1, which shows a file
  // that grew). The buffer does not move while the kernel writes into it.
  struct Flight {
    size_t index = 0;
    std::unique_ptr<ReadableFile> file;  // set while a small file waits to be read
    uint64_t size = 0;                   // at the stat
    Item item;
  };

  void ReaderLoop(ReadRing* ring);
  // Reads files [first, end), which this reader claimed, in batches of about kBatchBytes.
  void ReadRun(ReadRing*& ring, size_t first, size_t end);
  // Opens files from *next on until the batch holds kBatchBytes; charges them to the budget.
  std::vector<Flight> OpenBatch(size_t* next, size_t end);
  void ReadBatch(ReadRing*& ring, std::vector<Flight>& batch);
  // After a failed wait: the batch's unread files fail with why.
  void Abandon(std::vector<Flight>& batch, const Status& why);
  static constexpr int kNotRead = -(1 << 30);
  void Finish(Flight& f, int result);
  void Deliver(std::vector<Flight>& batch);
  // Waits until the budget has room or the consumer needs file k; false when stopping.
  bool WaitToContinue(size_t k);

  Env* env_;
  std::vector<std::string> paths_;
  size_t window_;
  size_t run_;
  bool batching_ = false;
  std::mutex mu_;
  // Separate wake-ups, so that a read wakes only the consumer waiting for that file and the
  // readers are woken only when half the window is free: with warm caches a read takes
  // microseconds, and wake-ups per file made context switches a large share of the daemon's CPU.
  std::condition_variable ready_;           // the consumer: slots_[taken_] was filled
  std::condition_variable room_;            // readers: room in the window or budget, or stop_
  std::vector<std::optional<Item>> slots_;  // guarded by mu_
  size_t next_ = 0;                         // next index a reader claims; guarded by mu_
  size_t taken_ = 0;                        // the consumer's position; guarded by mu_
  uint64_t ahead_bytes_ = 0;                // buffers claimed, not yet taken; guarded by mu_
  std::vector<uint64_t> charged_;           // per index, its share of ahead_bytes_; by mu_
  bool stop_ = false;                       // guarded by mu_
  // Buffers of reads a failed ring may still write into; freed after the rings are closed.
  std::vector<std::vector<Flight>> orphans_;  // guarded by mu_
  std::vector<std::unique_ptr<ReadRing>> rings_;  // one per reader, or none
  std::vector<std::thread> readers_;
};

}  // namespace cyrsync
