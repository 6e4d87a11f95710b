#include <gtest/gtest.h>

#include "snapshot/archive.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::snapshot {
namespace {

Entry E(const std::string& name, int64_t run, uint64_t member, uint64_t data,
        const std::string& sha1 = "s") {
  Entry e;
  e.name = name;
  e.sha1 = sha1;
  e.run_id = run;
  e.loc = {member, 10, data, 1};
  return e;
}

class IndexDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto idx = IndexDb::Open(dir_.Sub("index.sqlite"));
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    idx_ = std::move(idx).value();
    ASSERT_TRUE(
        idx_->CommitRun(
                {1, 100, 110, "src", "u"},
                {E("a", 1, 0, 512), E("dir/x", 1, 0, 1536), E("files/aa", 1, 10, 512, "aa")}, 20)
            .ok());
    ASSERT_TRUE(idx_->CommitRun({2, 200, 210, "src", "u"},
                                {E("a", 2, 20, 512), E("dir/y", 2, 20, 1536), E("a", 2, 30, 512),
                                 E("dirz", 2, 30, 1536)},
                                40)
                    .ok());
  }
  ::cyrsync::testing::TempDir dir_;
  std::unique_ptr<IndexDb> idx_;
};

TEST_F(IndexDbTest, LatestAsOfRun) {
  auto l = idx_->Latest("a");
  ASSERT_TRUE(l.ok() && l->has_value());
  EXPECT_EQ((*l)->run_id, 2);
  EXPECT_EQ((*l)->loc.member_offset, 30u);  // the later copy within run 2
  l = idx_->Latest("a", 1);
  ASSERT_TRUE(l.ok() && l->has_value());
  EXPECT_EQ((*l)->run_id, 1);
  EXPECT_FALSE(idx_->Latest("missing")->has_value());
  EXPECT_FALSE(idx_->Latest("dir/y", 1)->has_value());
}

TEST_F(IndexDbTest, LatestUnderPrefix) {
  auto under = idx_->LatestUnder("dir/");
  ASSERT_TRUE(under.ok());
  ASSERT_EQ(under->size(), 2u);  // not "dirz"
  EXPECT_EQ((*under)[0].name, "dir/x");
  EXPECT_EQ((*under)[1].name, "dir/y");
  EXPECT_EQ(idx_->LatestUnder("dir/", 1)->size(), 1u);
  EXPECT_EQ(idx_->LatestUnder("")->size(), 5u);
}

TEST_F(IndexDbTest, FilesRunsAndMeta) {
  EXPECT_TRUE(*idx_->HasFile("aa"));
  EXPECT_FALSE(*idx_->HasFile("bb"));
  auto runs = idx_->Runs();
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[1].started, 200);
  EXPECT_EQ(*idx_->CommittedEnd(), 40u);
  EXPECT_EQ(idx_->AllEntries()->size(), 7u);
  EXPECT_EQ(*idx_->LastCompaction(), 0);
  ASSERT_TRUE(idx_->SetLastCompaction(12345).ok());
  ASSERT_TRUE(idx_->SetTailState(TailState::kRunPending).ok());
  idx_.reset();
  auto again = IndexDb::Open(dir_.Sub("index.sqlite"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*(*again)->LastCompaction(), 12345);
  EXPECT_EQ(*(*again)->GetTailState(), TailState::kRunPending);
  ASSERT_TRUE((*again)->CommitRun({3, 300, 310, "s", "u"}, {E("b", 3, 40, 512)}, 50).ok());
  EXPECT_EQ(*(*again)->GetTailState(), TailState::kNone);  // committing settles the tail
}

TEST_F(IndexDbTest, CommitRunRejectsInconsistentInput) {
  EXPECT_EQ(idx_->CommitRun({3, 0, 0, "", ""}, {E("b", 4, 40, 512)}, 60).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(idx_->CommitRun({3, 0, 0, "", ""}, {E("b", 3, 40, 512)}, 45).code(),
            Code::kInvalidArgument);  // entry past the committed end
  EXPECT_EQ(idx_->CommitRun({3, 0, 0, "", ""}, {}, 30).code(), Code::kInvalidArgument);
  EXPECT_FALSE(idx_->CommitRun({2, 0, 0, "", ""}, {}, 60).ok());  // run 2 exists
  EXPECT_EQ(*idx_->CommittedEnd(), 40u);                          // nothing changed
  EXPECT_EQ(idx_->Runs()->size(), 2u);
}

}  // namespace
}  // namespace cyrsync::snapshot
