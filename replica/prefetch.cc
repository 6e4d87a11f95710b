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
  cv_.notify_all();
  for (auto& t : readers_) t.join();
}

void Prefetcher::ReaderLoop() {
  while (true) {
    size_t i;
    {
      std::unique_lock l(mu_);
      cv_.wait(l, [&] { return stop_ || next_ >= paths_.size() || next_ < taken_ + window_; });
      if (stop_ || next_ >= paths_.size()) return;
      i = next_++;
    }
    Item item = Read(paths_[i]);
    {
      std::lock_guard g(mu_);
      slots_[i] = std::move(item);
    }
    cv_.notify_all();
  }
}

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
  auto data = (*file)->ReadAll();
  if (data.ok()) {
    item.data = std::move(*data);
  } else {
    item.status = data.error();
  }
  return item;
}

Prefetcher::Item Prefetcher::Take(size_t i) {
  std::unique_lock l(mu_);
  cv_.wait(l, [&] { return slots_[i].has_value(); });
  Item item = std::move(*slots_[i]);
  slots_[i].reset();
  taken_ = i + 1;
  l.unlock();
  cv_.notify_all();
  return item;
}

}  // namespace cyrsync::replica
