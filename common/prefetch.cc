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

// Opens path: a large file is handed over open, a small one is returned for reading.
Prefetcher::Item Open(Env* env, const std::string& path, std::unique_ptr<ReadableFile>* small,
                      uint64_t* size) {
  Prefetcher::Item item;
  auto file = env->OpenRead(path);
  if (!file.ok()) {
    item.status = file.error();
    return item;
  }
  auto st = (*file)->Stat();
  if (st.ok() && st->size > Prefetcher::kMaxPrefetchBytes) {
    item.large = std::move(*file);
    return item;
  }
  *size = st.ok() ? st->size : 0;
  *small = std::move(*file);
  return item;
}

}  // namespace

Prefetcher::Prefetcher(Env* env, std::vector<std::string> paths, int threads, size_t window,
                       bool batch_reads, size_t run)
    : env_(env), paths_(std::move(paths)), window_(std::max<size_t>(window, 1)),
      run_(std::clamp<size_t>(run, 1, std::min<size_t>(window_, kMaxRun))), slots_(paths_.size()),
      charged_(paths_.size(), 0) {
  // No more readers than runs: a folder with a few new messages needs one.
  const size_t runs = (paths_.size() + run_ - 1) / run_;
  const size_t n = std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), runs);
  for (size_t i = 0; i < n && batch_reads; ++i) {
    rings_.push_back(ReadRing::Create(static_cast<unsigned>(run_)));  // a batch is in a run
    if (rings_.back()) batching_ = true;
  }
  for (size_t i = 0; i < n; ++i) {
    ReadRing* ring = i < rings_.size() ? rings_[i].get() : nullptr;
    readers_.emplace_back([this, ring] { ReaderLoop(ring); });
  }
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard g(mu_);
    stop_ = true;
  }
  room_.notify_all();
  for (auto& t : readers_) t.join();
  rings_.clear();  // before the buffers of any read a failed ring still had (orphans_)
}

void Prefetcher::ReaderLoop(ReadRing* ring) {
  while (true) {
    size_t first, end;
    {
      std::unique_lock l(mu_);
      room_.wait(l, [&] {
        return stop_ || next_ >= paths_.size() ||
               (next_ < taken_ + window_ && ahead_bytes_ < kMaxAheadBytes);
      });
      if (stop_ || next_ >= paths_.size()) {
        l.unlock();
        room_.notify_all();  // passes the end on to the other readers
        return;
      }
      first = next_;
      end = std::min({first + run_, paths_.size(), taken_ + window_});
      next_ = end;
    }
    ReadRun(ring, first, end);
  }
}

void Prefetcher::ReadRun(ReadRing*& ring, size_t first, size_t end) {
  size_t next = first;
  while (next < end) {
    if (next > first && !WaitToContinue(next)) return;
    std::vector<Flight> batch = OpenBatch(&next, end);
    ReadBatch(ring, batch);
    Deliver(batch);
  }
}

// The files before k are delivered or held by readers that claimed them earlier, so waiting
// for the consumer to reach k cannot wait on this reader.
bool Prefetcher::WaitToContinue(size_t k) {
  std::unique_lock l(mu_);
  room_.wait(l, [&] { return stop_ || ahead_bytes_ < kMaxAheadBytes || taken_ >= k; });
  return !stop_;
}

std::vector<Prefetcher::Flight> Prefetcher::OpenBatch(size_t* next, size_t end) {
  std::vector<Flight> batch;
  uint64_t bytes = 0;
  while (*next < end && bytes < kBatchBytes) {
    Flight f;
    f.index = (*next)++;
    f.item = Open(env_, paths_[f.index], &f.file, &f.size);
    if (f.file) {
      f.item.data.resize(static_cast<size_t>(f.size) + 1);  // one byte more shows growth
      bytes += f.size + 1;
    }
    batch.push_back(std::move(f));
  }
  std::lock_guard g(mu_);
  for (const Flight& f : batch) {
    if (!f.file) continue;
    charged_[f.index] = f.size + 1;
    ahead_bytes_ += f.size + 1;
  }
  return batch;
}

// One submission for the batch's small files, then their completions. After a ring failure
// the reads the kernel took complete first; the rest are read with pread, and so is every
// later batch of this reader. If waiting fails, the reads still in the ring fail, and the
// batch's buffers stay in orphans_ (in place: the kernel may still write into them) until the
// rings are closed.
void Prefetcher::ReadBatch(ReadRing*& ring, std::vector<Flight>& batch) {
  size_t queued = 0;
  for (size_t k = 0; ring && k < batch.size(); ++k) {
    Flight& f = batch[k];
    if (!f.file || f.file->fd() < 0) continue;
    ring->Queue(f.file->fd(), f.item.data.data(), f.item.data.size(), k);
    ++queued;
  }
  if (queued > 0) {
    const bool submitted = ring->Submit().ok();
    while (ring->submitted() > 0) {
      auto c = ring->Wait();
      if (!c.ok()) {
        Abandon(batch, c.status());
        ring = nullptr;
        return;
      }
      Finish(batch[c->tag], c->result);
    }
    if (!submitted) ring = nullptr;
  }
  for (Flight& f : batch) {
    if (f.file) Finish(f, kNotRead);
  }
}

void Prefetcher::Abandon(std::vector<Flight>& batch, const Status& why) {
  std::vector<Flight> out(batch.size());
  for (size_t k = 0; k < batch.size(); ++k) {
    out[k].index = batch[k].index;
    if (batch[k].file) {
      out[k].item.status = why;
    } else {
      out[k].item = std::move(batch[k].item);
    }
  }
  std::lock_guard g(mu_);
  orphans_.push_back(std::move(batch));  // a moved vector keeps its elements where they are
  batch = std::move(out);
}

// result: bytes the ring read, -errno, or kNotRead (the file is read here with pread).
void Prefetcher::Finish(Flight& f, int result) {
  std::unique_ptr<ReadableFile> file = std::move(f.file);
  if (result == kNotRead) {
    f.item.status = ReadRest(*file, &f.item.data, 0);
  } else if (result < 0) {
    f.item.status = IOError("read " + file->path() + ": " + std::strerror(-result));
  } else if (static_cast<uint64_t>(result) != f.size) {
    // Short (the kernel may stop early) or one byte more than the stat said: read on to the end.
    f.item.status = ReadRest(*file, &f.item.data, static_cast<size_t>(result));
  } else {
    f.item.data.resize(static_cast<size_t>(result));
  }
  if (!f.item.status.ok()) f.item.data.clear();
}

void Prefetcher::Deliver(std::vector<Flight>& batch) {
  bool wanted = false;
  {
    std::lock_guard g(mu_);
    for (Flight& f : batch) {
      slots_[f.index] = std::move(f.item);
      wanted = wanted || f.index == taken_;  // Take(taken_) is waiting or about to look
    }
  }
  if (wanted) ready_.notify_one();
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
  // While the byte budget is spent, each file taken may let a reader go on.
  const bool refill = (next_ < paths_.size() && next_ - taken_ == window_ / 2) || over;
  l.unlock();
  if (refill) room_.notify_all();
  return item;
}

}  // namespace cyrsync
