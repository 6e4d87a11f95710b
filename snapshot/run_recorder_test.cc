#include "snapshot/run_recorder.h"

#include <gtest/gtest.h>

#include <atomic>

#include "snapshot/archive_test_util.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::snapshot::internal {
namespace {

std::vector<Entry> Member(int64_t run, uint64_t offset, int n) {
  std::vector<Entry> out;
  for (int i = 0; i < n; ++i) {
    Entry e;
    e.name = "files/" + std::to_string(offset) + "-" + std::to_string(i);
    e.sha1 = "x";
    e.run_id = run;
    e.loc = {offset, 10, static_cast<uint64_t>(i) * 512, 1};
    out.push_back(std::move(e));
  }
  return out;
}

// AddRunEntries fails from call number fail_at on.
class FlakyIndex : public snapshot::testing::IndexDbWrapper {
 public:
  FlakyIndex(IndexDb* t, int fail_at) : IndexDbWrapper(t), fail_at_(fail_at) {}
  Status AddRunEntries(const std::vector<Entry>& e) override {
    if (++calls_ >= fail_at_) return IOError("injected: disk full");
    return IndexDbWrapper::AddRunEntries(e);
  }

 private:
  int fail_at_;
  std::atomic<int> calls_{0};
};

class RunRecorderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto idx = IndexDb::Open(dir_.Sub("index.sqlite"));
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    idx_ = std::move(idx).value();
  }
  ::cyrsync::testing::TempDir dir_;
  std::unique_ptr<IndexDb> idx_;
};

// More members than the queue holds, with reads from this thread in between.
TEST_F(RunRecorderTest, RecordsEveryMemberAndCommitsOnFinish) {
  const RunInfo run{1, 100, 0, "s", "u"};
  auto rec = RunRecorder::Start(idx_.get(), run);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  for (int m = 0; m < 100; ++m) {
    ASSERT_TRUE((*rec)->Add(Member(1, static_cast<uint64_t>(m) * 10, 50)).ok());
    if (m % 10 == 0) {
      ASSERT_TRUE(idx_->Latest("files/0-0").ok());
    }
  }
  ASSERT_TRUE((*rec)->Finish({1, 100, 110, "s", "u"}, 1000).ok());
  rec->reset();
  EXPECT_EQ(idx_->AllEntries()->size(), 5000u);
  EXPECT_EQ(*idx_->CommittedEnd(), 1000u);
  EXPECT_EQ(idx_->Runs()->size(), 1u);
}

TEST_F(RunRecorderTest, DroppedWithoutFinishRollsBack) {
  {
    auto rec = RunRecorder::Start(idx_.get(), {1, 100, 0, "s", "u"});
    ASSERT_TRUE(rec.ok());
    for (int m = 0; m < 20; ++m) ASSERT_TRUE((*rec)->Add(Member(1, m * 10u, 20)).ok());
  }
  EXPECT_EQ(idx_->AllEntries()->size(), 0u);
  EXPECT_TRUE(idx_->Runs()->empty());
  ASSERT_TRUE(idx_->CommitRun({1, 100, 110, "s", "u"}, Member(1, 0, 3), 10).ok());
}

TEST_F(RunRecorderTest, AnInsertErrorReachesTheWriterAndNothingCommits) {
  FlakyIndex flaky(idx_.get(), 3);
  auto rec = RunRecorder::Start(&flaky, {1, 100, 0, "s", "u"});
  ASSERT_TRUE(rec.ok());
  Status st;
  for (int m = 0; m < 40 && st.ok(); ++m) st = (*rec)->Add(Member(1, m * 10u, 20));
  Status fin = (*rec)->Finish({1, 100, 110, "s", "u"}, 400);
  EXPECT_EQ(fin.code(), Code::kIOError) << fin.ToString();
  EXPECT_NE(fin.message().find("disk full"), std::string::npos);
  rec->reset();
  EXPECT_EQ(idx_->AllEntries()->size(), 0u);
  EXPECT_TRUE(idx_->Runs()->empty());
}

}  // namespace
}  // namespace cyrsync::snapshot::internal
