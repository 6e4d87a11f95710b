#include "common/prefetch.h"

#include <algorithm>
#include <cstring>

namespace cyrsync {
namespace {

// Reads from offset `have` of file to its end, appending to out (sized to what it holds).
Status ReadRest(ReadableFile& file, std::string* out, size_t have) {
  out->resize(std::max(out->size(), have + 1));
  while (true) {
    if (have == out->size()) out->resize(out->size() * 2);
    ASSIGN_OR_RETURN(size_t n,
                     file.ReadAt(have, std::span<char>(out->data() + have, out->size() - have)));
    if (n == 0) break;
    have += n;
  }
  out->resize(have);
  return Status::Ok();
}

// The whole file, read straight into a buffer of its stat size (one read, no growing copies);
// a file that grew since the stat is still read to its end.
Prefetcher::Item ReadSmall(ReadableFile& file, uint64_t size) {
  Prefetcher::Item item;
  item.data.resize(static_cast<size_t>(size) + 1);
  item.status = ReadRest(file, &item.data, 0);
  if (!item.status.ok()) item.data.clear();
  return item;
}

}  // namespace

Prefetcher::Prefetcher(Env* env, std::vector<std::string> paths, int threads, size_t window,
                       bool batch_reads)
    : env_(env), paths_(std::move(paths)), window_(std::max<size_t>(window, 1)),
      slots_(paths_.size()), charged_(paths_.size(), 0) {
  const size_t n = std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), paths_.size());
  if (batch_reads && n > 0) {
    ring_ = ReadRing::Create(static_cast<unsigned>(std::min<size_t>(window_, 256)));
  }
  if (ring_) {
    flights_.resize(ring_->depth());
    for (size_t s = flights_.size(); s-- > 0;) free_.push_back(s);
  }
  readers_left_ = n;
  for (size_t i = 0; i < n; ++i) readers_.emplace_back([this] { ReaderLoop(); });
  if (ring_) submitter_ = std::thread([this] { SubmitterLoop(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard g(mu_);
    stop_ = true;
  }
  room_.notify_all();
  queued_.notify_all();
  for (auto& t : readers_) t.join();
  if (submitter_.joinable()) submitter_.join();
  ring_.reset();  // before the buffers of any read it still had (see SubmitterLoop)
}

void Prefetcher::ReaderLoop() {
  while (true) {
    size_t i;
    {
      std::unique_lock l(mu_);
      room_.wait(l, [&] {
        return stop_ || next_ >= paths_.size() ||
               (next_ < taken_ + window_ && ahead_bytes_ < kMaxAheadBytes);
      });
      if (stop_ || next_ >= paths_.size()) {
        --readers_left_;
        l.unlock();
        room_.notify_one();  // passes the end on to another waiting reader
        queued_.notify_one();
        return;
      }
      i = next_++;
    }
    std::unique_ptr<ReadableFile> small;
    uint64_t size = 0;
    Item item = Open(paths_[i], &small, &size);
    if (small) {
      std::lock_guard g(mu_);
      charged_[i] = size + 1;
      ahead_bytes_ += size + 1;
    }
    if (small && ring_ && small->fd() >= 0) {
      Flight f{i, std::move(small), size, {}};
      f.item.data.resize(static_cast<size_t>(size) + 1);  // one byte more shows a file that grew
      {
        std::lock_guard g(mu_);
        waiting_.push_back(std::move(f));
      }
      queued_.notify_one();
      continue;
    }
    if (small) item = ReadSmall(*small, size);
    Deliver(i, std::move(item));
  }
}

Prefetcher::Item Prefetcher::Open(const std::string& path, std::unique_ptr<ReadableFile>* small,
                                  uint64_t* size) {
  Item item;
  auto file = env_->OpenRead(path);
  if (!file.ok()) {
    item.status = file.error();
    return item;
  }
  auto st = (*file)->Stat();
  if (st.ok() && st->size > kMaxPrefetchBytes) {
    item.large = std::move(*file);
    return item;
  }
  *size = st.ok() ? st->size : 0;
  *small = std::move(*file);
  return item;
}

void Prefetcher::Deliver(size_t i, Item item) {
  bool wanted;
  {
    std::lock_guard g(mu_);
    slots_[i] = std::move(item);
    wanted = i == taken_;  // Take(i) is waiting or about to look
  }
  if (wanted) ready_.notify_one();
}

void Prefetcher::SubmitterLoop() {
  bool broken = false;  // the ring failed: read what comes with pread
  while (true) {
    std::vector<Flight> batch;
    {
      std::unique_lock l(mu_);
      const bool busy = !broken && ring_->in_flight() > 0;
      if (!busy) {
        queued_.wait(l, [&] { return stop_ || !waiting_.empty() || readers_left_ == 0; });
      }
      const size_t room = broken ? waiting_.size() : free_.size();
      while (!stop_ && !waiting_.empty() && batch.size() < room) {
        batch.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
      if (batch.empty() && !busy && (stop_ || (readers_left_ == 0 && waiting_.empty()))) return;
    }
    if (broken) {
      for (auto& f : batch) Deliver(f.index, ReadSmall(*f.file, f.size));
      continue;
    }
    if (!batch.empty() && !Launch(std::move(batch))) {
      AbandonRing();
      broken = true;
      continue;
    }
    if (ring_->in_flight() == 0) continue;
    auto c = ring_->Wait();
    if (!c.ok()) {
      AbandonRing();
      broken = true;
      continue;
    }
    Complete(c->tag, c->result);
  }
}

bool Prefetcher::Launch(std::vector<Flight>&& batch) {
  for (auto& f : batch) {
    const size_t slot = free_.back();
    free_.pop_back();
    flights_[slot] = std::move(f);
    Flight& in = *flights_[slot];
    ring_->Queue(in.file->fd(), in.item.data.data(), in.item.data.size(), slot);
  }
  return ring_->Submit().ok();
}

void Prefetcher::Complete(size_t slot, int result) {
  Flight f = std::move(*flights_[slot]);
  flights_[slot].reset();
  free_.push_back(slot);
  if (result < 0) {
    f.item.status = IOError("read " + f.file->path() + ": " + std::strerror(-result));
    f.item.data.clear();
  } else if (static_cast<uint64_t>(result) != f.size) {
    // Short (the kernel may stop early) or one byte more than the stat said: read on to the end.
    f.item.status = ReadRest(*f.file, &f.item.data, static_cast<size_t>(result));
    if (!f.item.status.ok()) f.item.data.clear();
  } else {
    f.item.data.resize(static_cast<size_t>(result));
  }
  Deliver(f.index, std::move(f.item));
}

// After a failed submit or wait: the reads the kernel took complete first (their buffers are
// written until then); the files it never took are read with pread. If waiting fails too, the
// files still in the ring fail, and their buffers stay with the ring until ~Prefetcher.
void Prefetcher::AbandonRing() {
  Status failed;
  while (ring_->submitted() > 0) {
    auto c = ring_->Wait();
    if (!c.ok()) {
      failed = c.status();
      break;
    }
    Complete(c->tag, c->result);
  }
  for (auto& flight : flights_) {
    if (!flight) continue;
    if (failed.ok()) {
      Deliver(flight->index, ReadSmall(*flight->file, flight->size));
      flight.reset();
    } else {
      Item item;
      item.status = failed;
      Deliver(flight->index, std::move(item));
    }
  }
}

Prefetcher::Item Prefetcher::Take(size_t i) {
  std::unique_lock l(mu_);
  ready_.wait(l, [&] { return slots_[i].has_value(); });
  Item item = std::move(*slots_[i]);
  slots_[i].reset();
  taken_ = i + 1;
  const bool over = ahead_bytes_ >= kMaxAheadBytes;
  ahead_bytes_ -= charged_[i];
  // Readers stop when the window is full and are woken together once half of it is taken, not
  // one per file: a wake-up per file cost two context switches per message with warm caches.
  // Readers stopped by the byte budget are woken when it has room again.
  const bool refill = next_ < paths_.size() &&
                      (next_ - taken_ == window_ / 2 || (over && ahead_bytes_ < kMaxAheadBytes));
  l.unlock();
  if (refill) room_.notify_all();
  return item;
}

}  // namespace cyrsync
