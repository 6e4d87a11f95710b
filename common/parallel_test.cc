#include "common/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace cyrsync {
namespace {

TEST(ParallelFor, CallsEveryIndexOnce) {
  for (size_t n : {0, 1, 31, 32, 33, 1000}) {
    for (int threads : {0, 1, 2, 8}) {
      std::vector<std::atomic<int>> calls(n);
      ParallelFor(n, threads, [&](size_t i) { calls[i]++; }, 7);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(calls[i].load(), 1) << n << " " << threads << " " << i;
    }
  }
}

TEST(ParallelFor, UsesSeveralThreadsWhenAsked) {
  std::mutex mu;
  std::set<std::thread::id> seen;
  std::atomic<int> inside{0}, max_inside{0};
  ParallelFor(64, 4, [&](size_t) {
    int now = ++inside;
    int m = max_inside.load();
    while (now > m && !max_inside.compare_exchange_weak(m, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    --inside;
    std::lock_guard g(mu);
    seen.insert(std::this_thread::get_id());
  }, 1);
  EXPECT_GT(seen.size(), 1u);
  EXPECT_GT(max_inside.load(), 1);
}

TEST(ParallelFor, OneThreadRunsInlineInOrder) {
  std::vector<size_t> order;
  const auto me = std::this_thread::get_id();
  ParallelFor(100, 1, [&](size_t i) {
    EXPECT_EQ(std::this_thread::get_id(), me);
    order.push_back(i);
  });
  ASSERT_EQ(order.size(), 100u);
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i);
}

}  // namespace
}  // namespace cyrsync
