#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace cyrsync {

void ParallelFor(size_t n, int threads, const std::function<void(size_t)>& fn, size_t batch) {
  batch = std::max<size_t>(batch, 1);
  const size_t batches = (n + batch - 1) / batch;
  const size_t extra = std::min<size_t>(threads > 1 ? threads - 1 : 0, batches > 0 ? batches - 1 : 0);
  std::atomic<size_t> next{0};
  auto drain = [&] {
    for (size_t b = next++; b < batches; b = next++) {
      const size_t end = std::min(n, (b + 1) * batch);
      for (size_t i = b * batch; i < end; ++i) fn(i);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(extra);
  for (size_t t = 0; t < extra; ++t) pool.emplace_back(drain);
  drain();
  for (auto& t : pool) t.join();
}

}  // namespace cyrsync
