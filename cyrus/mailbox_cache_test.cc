// MailboxListCache reads mailboxes.db again only when it may have changed.
#include "cyrus/mailbox_cache.h"

#include <gtest/gtest.h>

#include "cyrus/cyrusdb_test_util.h"
#include "tests/testutil/counting_env.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::cyrus {
namespace {

using testing::ReadFixture;

class MailboxListCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto conf = ParseImapdConf("configdirectory: " + dir_.path() + "\n", "imapd.conf");
    ASSERT_TRUE(conf.ok()) << conf.error().ToString();
    conf_ = *conf;
    Write("mboxlist-3.6.1-uuid/mailboxes.db");
  }
  void Write(const std::string& fixture) {
    ASSERT_TRUE(AtomicWriteFile(Env::Default(), conf_.mboxlist_db_path, ReadFixture(fixture), {})
                    .ok());
  }
  // Makes mailboxes.db look settled: changed an hour ago.
  void Settle() {
    ASSERT_TRUE(Env::Default()
                    ->SetMtime(conf_.mboxlist_db_path,
                               Env::Default()->NowNanos() - int64_t{3600} * 1'000'000'000)
                    .ok());
  }
  size_t Reads() const { return env_.Count("open"); }

  cyrsync::testing::TempDir dir_;
  ImapdConf conf_;
  cyrsync::testing::CountingEnv env_{Env::Default()};
};

TEST_F(MailboxListCacheTest, AFileChangedWithinTheRacyWindowIsReadAgain) {
  MailboxListCache cache(/*racy_window_ns=*/1'000'000'000);
  auto first = cache.Get(&env_, conf_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_FALSE((*first)->empty());
  EXPECT_EQ(Reads(), 1u);
  // Written just now: within the racy window, so not trusted yet.
  auto again = cache.Get(&env_, conf_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Reads(), 2u);
  ASSERT_NO_FATAL_FAILURE(Settle());
  ASSERT_TRUE(cache.Get(&env_, conf_).ok());  // the settle changed ctime: read again
  EXPECT_EQ(Reads(), 3u);
}

TEST_F(MailboxListCacheTest, AKeptListIsReusedUntilTheFileChanges) {
  ASSERT_NO_FATAL_FAILURE(Settle());
  // ctime stays recent after SetMtime: a zero racy window trusts it.
  MailboxListCache cache(/*racy_window_ns=*/0);
  auto first = cache.Get(&env_, conf_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = cache.Get(&env_, conf_);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(Reads(), 1u);
  EXPECT_EQ(first->get(), second->get());
  EXPECT_EQ(env_.Count("stat"), 2u + 1u);  // one per Get, plus the lock check of the read

  Write("mboxlist-3.6.1-vdom/mailboxes.db");  // another file version (new inode and size)
  auto third = cache.Get(&env_, conf_);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(Reads(), 2u);
  EXPECT_NE((*third)->front().intname.find("example.com!"), std::string::npos);
}

TEST_F(MailboxListCacheTest, AMissingFileIsAnError) {
  ASSERT_TRUE(Env::Default()->Remove(conf_.mboxlist_db_path).ok());
  MailboxListCache cache(0);
  auto got = cache.Get(&env_, conf_);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace cyrsync::cyrus
