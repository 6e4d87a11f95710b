#include "replica/prefetch.h"

#include <algorithm>

namespace cyrsync::replica {

Prefetcher::Prefetcher(Env* env, std::vector<std::string> paths, int threads, size_t window)
    : env_(env), paths_(std::move(paths)), window_(std::max<size_t>(window, 1)),
      slots_(paths_.size()) {
  const size_t n = std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), paths_.size());
  for (size_t i = 0; i < n; ++i) readers_.emplace_back([this] { ReaderLoop(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard g(mu_);
    stop_ = true;
  }
  room_.notify_all();
  for (auto& t : readers_) t.join();
}

void Prefetcher::ReaderLoop() {
  while (true) {
    size_t i;
    {
      std::unique_lock l(mu_);
      room_.wait(l, [&] { return stop_ || next_ >= paths_.size() || next_ < taken_ + window_; });
      if (stop_ || next_ >= paths_.size()) {
        l.unlock();
        room_.notify_one();  // passes the end on to another waiting reader
        return;
      }
      i = next_++;
    }
    Item item = Read(paths_[i]);
    bool wanted;
    {
      std::lock_guard g(mu_);
      slots_[i] = std::move(item);
      wanted = i == taken_;  // Take(i) is waiting or about to look
    }
    if (wanted) ready_.notify_one();
  }
}

namespace {

// The whole file, read straight into a buffer of its stat size (one read, no growing copies);
// a file that grew since the stat is still read to its end.
Result<std::string> ReadWhole(ReadableFile& file, uint64_t size_hint) {
  std::string out(static_cast<size_t>(size_hint) + 1, '\0');
  size_t have = 0;
  while (true) {
    if (have == out.size()) out.resize(out.size() * 2);
    ASSIGN_OR_RETURN(size_t n,
                     file.ReadAt(have, std::span<char>(out.data() + have, out.size() - have)));
    if (n == 0) break;
    have += n;
  }
  out.resize(have);
  return out;
}

}  // namespace

Prefetcher::Item Prefetcher::Read(const std::string& path) {
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
  auto data = ReadWhole(**file, st.ok() ? st->size : 0);
  if (data.ok()) {
    item.data = std::move(*data);
  } else {
    item.status = data.error();
  }
  return item;
}

Prefetcher::Item Prefetcher::Take(size_t i) {
  std::unique_lock l(mu_);
  ready_.wait(l, [&] { return slots_[i].has_value(); });
  Item item = std::move(*slots_[i]);
  slots_[i].reset();
  taken_ = i + 1;
  // Readers stop when the window is full and are woken together once half of it is taken, not
  // one per file: a wake-up per file cost two context switches per message with warm caches.
  const bool refill = next_ < paths_.size() && next_ - taken_ == window_ / 2;
  l.unlock();
  if (refill) room_.notify_all();
  return item;
}

}  // namespace cyrsync::replica
