// Store's views of mailboxes.db: the folders of one user by hash lookup, rebuilt when the file
// changes.
#include <gmock/gmock.h>

#include "cyrus/cyrusdb_test_util.h"
#include "replica/session_test_util.h"

namespace cyrsync::replica::test {
namespace {

using cyrus::testing::ReadFixture;

class StoreMailboxesTest : public ReplicaFixture {
 protected:
  void SetUp() override {
    ReplicaFixture::SetUp();
    WriteFile(Conf("mailboxes.db"), ReadFixture("mboxlist-3.6.1-uuid/mailboxes.db"));
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }

  std::vector<std::string> Names(const std::string& user) {
    auto got = store_->FoldersOf(user);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    std::vector<std::string> out;
    if (!got.ok()) return out;
    for (size_t i : got->at) out.push_back((*got->list)[i].intname);
    return out;
  }
};

TEST_F(StoreMailboxesTest, FoldersOfGivesExactlyTheUsersRealFolders) {
  EXPECT_THAT(Names("alice"),
              ::testing::UnorderedElementsAre("user.alice", "user.alice.Archive",
                                              "user.alice.Archive.2023", "user.alice.Sent",
                                              "user.alice.Trash"));
  auto bob = Names("bob");
  EXPECT_THAT(bob, ::testing::Contains("user.bob"));
  EXPECT_THAT(bob, ::testing::Contains("user.bob.New"));
  for (const auto& n : bob) EXPECT_EQ(n.find("alice"), std::string::npos) << n;
  EXPECT_TRUE(Names("nobody").empty());
  EXPECT_TRUE(Names("").empty());  // shared folders belong to no user
}

TEST_F(StoreMailboxesTest, FoldersOfFollowsANewMailboxesDb) {
  ASSERT_FALSE(Names("alice").empty());
  // The domain fixture: the same users, now alice@example.com.
  WriteFile(Conf("mailboxes.db"), ReadFixture("mboxlist-3.6.1-vdom/mailboxes.db"));
  EXPECT_TRUE(Names("alice").empty());
  EXPECT_THAT(Names("alice@example.com"), ::testing::Contains("example.com!user.alice.Sent"));
}

}  // namespace
}  // namespace cyrsync::replica::test
