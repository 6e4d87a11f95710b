#include "common/prefetch.h"

#include <gtest/gtest.h>

#include "tests/testutil/temp_dir.h"

namespace cyrsync {
namespace {

class PrefetchTest : public ::testing::Test {
 public:
  std::string Make(const std::string& name, const std::string& data) {
    const std::string p = JoinPath(dir_.path(), name);
    EXPECT_TRUE(AtomicWriteFile(Env::Default(), p, data, {}).ok());
    return p;
  }
  cyrsync::testing::TempDir dir_;
};

// Both read paths: batched through the ring (when the kernel offers one) and pread by the
// reader threads.
class PrefetchModeTest : public PrefetchTest, public ::testing::WithParamInterface<bool> {};
INSTANTIATE_TEST_SUITE_P(BothReadPaths, PrefetchModeTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Ring" : "Pread"; });

TEST_P(PrefetchModeTest, DeliversEveryFileInOrderAndReportsMissingOnes) {
  std::vector<std::string> paths;
  for (int i = 0; i < 200; ++i) {
    // Sizes from empty to several pages, so that a read the kernel cuts short shows.
    const std::string body = i % 11 == 0 ? "" : std::string(static_cast<size_t>(i) * 97, 'a' + i % 26);
    paths.push_back(i % 7 == 3 ? JoinPath(dir_.path(), "gone" + std::to_string(i))
                               : Make(std::to_string(i) + ".", "message " + std::to_string(i) + body));
  }
  Prefetcher p(Env::Default(), paths, 4, 8, GetParam());
  for (int i = 0; i < 200; ++i) {
    const std::string body = i % 11 == 0 ? "" : std::string(static_cast<size_t>(i) * 97, 'a' + i % 26);
    Prefetcher::Item item = p.Take(i);
    if (i % 7 == 3) {
      EXPECT_EQ(item.status.code(), Code::kNotFound) << i;
    } else {
      ASSERT_TRUE(item.status.ok()) << i << item.status.ToString();
      EXPECT_EQ(item.data, "message " + std::to_string(i) + body);
      EXPECT_EQ(item.large, nullptr);
    }
  }
}

TEST_F(PrefetchTest, LargeFilesAreOpenedNotRead) {
  const std::string big(Prefetcher::kMaxPrefetchBytes + 1, 'x');
  Prefetcher p(Env::Default(), {Make("1.", big), Make("2.", "small")});
  Prefetcher::Item a = p.Take(0);
  ASSERT_TRUE(a.status.ok());
  ASSERT_NE(a.large, nullptr);
  EXPECT_TRUE(a.data.empty());
  auto all = a.large->ReadAll();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, big);
  EXPECT_EQ(p.Take(1).data, "small");
}

// Readers that stop at a full window are woken once half of it is taken: every window size,
// reader count and run length must still deliver every file (a missed wake-up would hang here).
TEST_P(PrefetchModeTest, EveryWindowSizeDrainsTheWholeList) {
  std::vector<std::string> paths;
  for (int i = 0; i < 300; ++i) paths.push_back(Make(std::to_string(i) + ".", std::to_string(i)));
  for (size_t window : {1, 2, 3, 5, 8, 32, 1000}) {
    for (int threads : {1, 2, 4, 7}) {
      for (size_t run : {1, 3, 32, 500}) {
        Prefetcher p(Env::Default(), paths, threads, window, GetParam(), run);
        for (int i = 0; i < 300; ++i) {
          ASSERT_EQ(p.Take(i).data, std::to_string(i))
              << "window " << window << " threads " << threads << " run " << run;
        }
      }
    }
  }
}

// n files of nearly kMaxPrefetchBytes each, file i filled with 'a' + i % 26.
std::vector<std::string> MakeBigFiles(PrefetchTest& t, int n) {
  std::vector<std::string> paths;
  for (int i = 0; i < n; ++i) {
    paths.push_back(t.Make(std::to_string(i) + ".", std::string(Prefetcher::kMaxPrefetchBytes - 1,
                                                               static_cast<char>('a' + i % 26))));
  }
  return paths;
}

void TakeBigFiles(Prefetcher& p, int n) {
  const size_t big = Prefetcher::kMaxPrefetchBytes - 1;
  for (int i = 0; i < n; ++i) {
    Prefetcher::Item item = p.Take(i);
    ASSERT_TRUE(item.status.ok()) << i;
    ASSERT_EQ(item.data.size(), big) << i;
    EXPECT_EQ(item.data[big / 2], static_cast<char>('a' + i % 26)) << i;
  }
}

// Files near kMaxPrefetchBytes fill the byte budget long before the window: readers stopped by
// it must be woken as the consumer takes files (a missed wake-up would hang here).
TEST_P(PrefetchModeTest, TheByteBudgetStopsAndRestartsTheReaders) {
  const std::vector<std::string> paths = MakeBigFiles(*this, 40);
  for (size_t run : {1, 5, 64}) {
    Prefetcher p(Env::Default(), paths, 4, 64, GetParam(), run);
    TakeBigFiles(p, 40);
  }
}

// A run is read in batches of about kBatchBytes; a reader waits between them while the budget
// is spent, and must be woken when the consumer reaches its next file, even if the budget is
// still spent by files further on (a missed wake-up would hang here).
TEST_P(PrefetchModeTest, ALongRunOfLargeFilesWaitsForTheConsumer) {
  Prefetcher p(Env::Default(), MakeBigFiles(*this, 24), 2, 64, GetParam(), 12);
  TakeBigFiles(p, 24);
}

TEST_P(PrefetchModeTest, StoppingEarlyJoinsTheReaders) {
  std::vector<std::string> paths;
  for (int i = 0; i < 100; ++i) paths.push_back(Make(std::to_string(i) + ".", "m"));
  {
    Prefetcher p(Env::Default(), paths, 3, 4, GetParam());
    EXPECT_EQ(p.Take(0).data, "m");
  }  // the readers wait on the window and must still stop
  {
    Prefetcher p(Env::Default(), paths, 3, 64, GetParam());
  }  // reads in the ring when it stops
  Prefetcher empty(Env::Default(), {}, 8, 64, GetParam());
}

// On a kernel with io_uring (the CI and benchmark machines) the batched path is the one taken;
// where a sandbox refuses io_uring the test says so instead of passing silently.
TEST_F(PrefetchTest, BatchesWhereTheKernelOffersARing) {
  auto ring = ReadRing::Create(8);
  if (!ring) GTEST_SKIP() << "this kernel or sandbox refuses io_uring";
  Prefetcher p(Env::Default(), {Make("1.", "x")});
  EXPECT_TRUE(p.batching());
  EXPECT_EQ(p.Take(0).data, "x");
  Prefetcher off(Env::Default(), {Make("2.", "y")}, 8, 64, false);
  EXPECT_FALSE(off.batching());
  EXPECT_EQ(off.Take(0).data, "y");
}

}  // namespace
}  // namespace cyrsync
