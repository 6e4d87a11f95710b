// Reads message files ahead of the session thread that sends them: a few reader threads open
// and read whole files, at most `window` files ahead of the consumer, so a cold disk serves
// several reads at once instead of one file after another. Files larger than kMaxPrefetchBytes
// are only opened ahead; the consumer streams them.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace cyrsync::replica {

class Prefetcher {
 public:
  static constexpr uint64_t kMaxPrefetchBytes = 4 << 20;

  struct Item {
    Status status;                        // kNotFound: the file is gone
    std::string data;                     // the whole file, when small
    std::unique_ptr<ReadableFile> large;  // open file to stream, when larger
  };

  // On a cold disk, eight readers with up to 64 files in flight took a third less time than four
  // with 32 (a first snapshot of 300k messages, 2 cores); 16 or 32 readers were slower again.
  Prefetcher(Env* env, std::vector<std::string> paths, int threads = 8, size_t window = 64);
  ~Prefetcher();  // stops the readers and waits for them
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Blocks until paths[i] is read. REQUIRES: called for i = 0, 1, 2, ... in order.
  Item Take(size_t i);

 private:
  void ReaderLoop();
  Item Read(const std::string& path);

  Env* env_;
  std::vector<std::string> paths_;
  size_t window_;
  std::mutex mu_;
  // Separate wake-ups, so that a file read wakes only the consumer waiting for that file and the
  // readers are woken only when half the window is free: with warm caches a read takes
  // microseconds, and wake-ups per file made context switches a large share of the daemon's CPU.
  std::condition_variable ready_;           // the consumer: slots_[taken_] was filled
  std::condition_variable room_;            // readers: half the window is free, or stop_
  std::vector<std::optional<Item>> slots_;  // guarded by mu_
  size_t next_ = 0;                         // next index a reader claims; guarded by mu_
  size_t taken_ = 0;                        // the consumer's position; guarded by mu_
  bool stop_ = false;                       // guarded by mu_
  std::vector<std::thread> readers_;
};

}  // namespace cyrsync::replica
