#include "snapshot/run_recorder.h"

#include <system_error>

namespace cyrsync::snapshot::internal {

Result<std::unique_ptr<RunRecorder>> RunRecorder::Start(IndexDb* index, const RunInfo& run) {
  RETURN_IF_ERROR(index->BeginRunRecord(run));
  std::unique_ptr<RunRecorder> r(new RunRecorder(index));
  try {
    r->worker_ = std::thread([p = r.get()] { p->Work(); });
  } catch (const std::system_error&) {
    // No thread to be had: Add inserts on the caller's thread instead.
  }
  return r;
}

RunRecorder::~RunRecorder() {
  StopWorker(false);
  if (open_) index_->AbortRunRecord();
}

void RunRecorder::StopWorker(bool drain) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (!drain) queue_.clear();
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void RunRecorder::Work() {
  std::unique_lock lock(mu_);
  while (true) {
    changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to insert
    std::vector<Entry> batch = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    changed_.notify_all();  // room in the queue
    Status st = index_->AddRunEntries(batch);
    lock.lock();
    if (!st.ok() && error_.ok()) {
      error_ = std::move(st);
      queue_.clear();
      stopping_ = true;
    }
  }
}

Status RunRecorder::Add(std::vector<Entry>&& entries) {
  if (!worker_.joinable()) {
    if (!error_.ok()) return error_;
    error_ = index_->AddRunEntries(entries);
    return error_;
  }
  std::unique_lock lock(mu_);
  changed_.wait(lock, [this] { return stopping_ || queue_.size() < kMaxQueued; });
  if (!error_.ok()) return error_;
  if (stopping_) return FailedPreconditionError("run record already finished");
  queue_.push_back(std::move(entries));
  lock.unlock();
  changed_.notify_all();
  return Status::Ok();
}

Status RunRecorder::Finish(const RunInfo& run, uint64_t committed_end) {
  StopWorker(true);
  if (!error_.ok()) return error_;
  open_ = false;  // FinishRunRecord commits, or rolls back on failure
  return index_->FinishRunRecord(run, committed_end);
}

}  // namespace cyrsync::snapshot::internal
