// Feeds a run's entries into its index on a background thread while the archive is still being
// written, so the index work overlaps the transfer instead of following it. The record is one
// SQLite transaction (IndexDb::BeginRunRecord … FinishRunRecord): nothing of the run is visible
// or durable in the index before Finish, which the writer calls only after the archive's fsync.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "snapshot/archive.h"

namespace cyrsync::snapshot::internal {

class RunRecorder {
 public:
  // Opens the run's record in index (which must outlive the recorder).
  static Result<std::unique_ptr<RunRecorder>> Start(IndexDb* index, const RunInfo& run);
  // Without a successful Finish: stops the worker and rolls the record back.
  ~RunRecorder();
  RunRecorder(const RunRecorder&) = delete;
  RunRecorder& operator=(const RunRecorder&) = delete;

  // Queues one member's entries (waits while kMaxQueued members are queued). Returns the first
  // error of an earlier insert; after one, nothing more is inserted.
  Status Add(std::vector<Entry>&& entries);
  // Waits until every queued entry is inserted, then commits the record.
  Status Finish(const RunInfo& run, uint64_t committed_end);

 private:
  static constexpr size_t kMaxQueued = 16;

  explicit RunRecorder(IndexDb* index) : index_(index) {}
  void Work();
  void StopWorker(bool drain);

  IndexDb* index_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::vector<Entry>> queue_;
  bool stopping_ = false;
  bool open_ = true;  // the record is open in the index
  Status error_;      // the worker's first error
  std::thread worker_;
};

}  // namespace cyrsync::snapshot::internal
