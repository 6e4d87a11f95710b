#include "replica/prefetch.h"

#include <gtest/gtest.h>

#include "tests/testutil/temp_dir.h"

namespace cyrsync::replica {
namespace {

class PrefetchTest : public ::testing::Test {
 protected:
  std::string Make(const std::string& name, const std::string& data) {
    const std::string p = JoinPath(dir_.path(), name);
    EXPECT_TRUE(AtomicWriteFile(Env::Default(), p, data, {}).ok());
    return p;
  }
  cyrsync::testing::TempDir dir_;
};

TEST_F(PrefetchTest, DeliversEveryFileInOrderAndReportsMissingOnes) {
  std::vector<std::string> paths;
  for (int i = 0; i < 200; ++i) {
    paths.push_back(i % 7 == 3 ? JoinPath(dir_.path(), "gone" + std::to_string(i))
                               : Make(std::to_string(i) + ".", "message " + std::to_string(i)));
  }
  Prefetcher p(Env::Default(), paths, 4, 8);
  for (int i = 0; i < 200; ++i) {
    Prefetcher::Item item = p.Take(i);
    if (i % 7 == 3) {
      EXPECT_EQ(item.status.code(), Code::kNotFound) << i;
    } else {
      ASSERT_TRUE(item.status.ok()) << i << item.status.ToString();
      EXPECT_EQ(item.data, "message " + std::to_string(i));
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

// Readers that stop at a full window are woken once half of it is taken: every window size and
// reader count must still deliver every file (a missed wake-up would hang here).
TEST_F(PrefetchTest, EveryWindowSizeDrainsTheWholeList) {
  std::vector<std::string> paths;
  for (int i = 0; i < 300; ++i) paths.push_back(Make(std::to_string(i) + ".", std::to_string(i)));
  for (size_t window : {1, 2, 3, 5, 8, 32, 1000}) {
    for (int threads : {1, 2, 4, 7}) {
      Prefetcher p(Env::Default(), paths, threads, window);
      for (int i = 0; i < 300; ++i) {
        ASSERT_EQ(p.Take(i).data, std::to_string(i)) << "window " << window << " threads " << threads;
      }
    }
  }
}

TEST_F(PrefetchTest, StoppingEarlyJoinsTheReaders) {
  std::vector<std::string> paths;
  for (int i = 0; i < 100; ++i) paths.push_back(Make(std::to_string(i) + ".", "m"));
  {
    Prefetcher p(Env::Default(), paths, 3, 4);
    EXPECT_EQ(p.Take(0).data, "m");
  }  // the readers wait on the window and must still stop
  Prefetcher empty(Env::Default(), {});
}

}  // namespace
}  // namespace cyrsync::replica
