#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

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


// A second connection, as a restore running beside a snapshot would have.
std::unique_ptr<IndexDb> OpenOther(const std::string& path) {
  auto idx = IndexDb::Open(path);
  EXPECT_TRUE(idx.ok()) << idx.status().ToString();
  return idx.ok() ? std::move(idx).value() : nullptr;
}

TEST_F(IndexDbTest, RunRecordIsInvisibleElsewhereUntilFinished) {
  ASSERT_TRUE(idx_->BeginRunRecord({3, 300, 0, "s", "u"}).ok());
  ASSERT_TRUE(idx_->AddRunEntries({E("files/cc", 3, 40, 512, "cc")}).ok());
  ASSERT_TRUE(idx_->AddRunEntries({E("b", 3, 50, 512)}).ok());
  EXPECT_TRUE(*idx_->HasFile("cc"));  // the writer's own connection sees its record
  auto other = OpenOther(dir_.Sub("index.sqlite"));
  ASSERT_NE(other, nullptr);
  EXPECT_FALSE(*other->HasFile("cc"));
  EXPECT_EQ(other->Runs()->size(), 2u);
  EXPECT_EQ(*other->CommittedEnd(), 40u);
  ASSERT_TRUE(idx_->FinishRunRecord({3, 300, 310, "s", "u"}, 60).ok());
  EXPECT_TRUE(*other->HasFile("cc"));
  EXPECT_EQ(other->Runs()->size(), 3u);
  EXPECT_EQ(*other->CommittedEnd(), 60u);
  EXPECT_EQ(other->AllEntries()->size(), 9u);
}

TEST_F(IndexDbTest, AbortedOrDroppedRunRecordLeavesNothing) {
  ASSERT_TRUE(idx_->BeginRunRecord({3, 300, 0, "s", "u"}).ok());
  EXPECT_EQ(idx_->BeginRunRecord({4, 300, 0, "s", "u"}).code(), Code::kFailedPrecondition);
  ASSERT_TRUE(idx_->AddRunEntries({E("b", 3, 40, 512)}).ok());
  idx_->AbortRunRecord();
  EXPECT_EQ(idx_->AllEntries()->size(), 7u);
  EXPECT_EQ(idx_->AddRunEntries({E("b", 3, 40, 512)}).code(), Code::kFailedPrecondition);
  // Closing the connection with a record open is a crash before the commit.
  ASSERT_TRUE(idx_->BeginRunRecord({3, 300, 0, "s", "u"}).ok());
  ASSERT_TRUE(idx_->AddRunEntries({E("b", 3, 40, 512)}).ok());
  idx_.reset();
  auto again = OpenOther(dir_.Sub("index.sqlite"));
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->AllEntries()->size(), 7u);
  EXPECT_EQ(again->Runs()->size(), 2u);
}

TEST_F(IndexDbTest, FinishRunRecordRefusesInconsistentRecord) {
  struct Case {
    std::vector<Entry> entries;
    uint64_t end;
  };
  for (const Case& c : {Case{{E("b", 4, 40, 512)}, 60},   // an entry of another run
                        Case{{E("b", 3, 40, 512)}, 45},   // an entry past the committed end
                        Case{{}, 30}}) {                  // the committed end goes back
    ASSERT_TRUE(idx_->BeginRunRecord({3, 300, 0, "s", "u"}).ok());
    ASSERT_TRUE(idx_->AddRunEntries(c.entries).ok());
    EXPECT_EQ(idx_->FinishRunRecord({3, 300, 310, "s", "u"}, c.end).code(),
              Code::kInvalidArgument);
    EXPECT_EQ(idx_->AllEntries()->size(), 7u);  // rolled back
    EXPECT_EQ(*idx_->CommittedEnd(), 40u);
  }
  ASSERT_TRUE(idx_->BeginRunRecord({3, 300, 0, "s", "u"}).ok());
  EXPECT_EQ(idx_->FinishRunRecord({4, 300, 310, "s", "u"}, 50).code(), Code::kInvalidArgument);
  ASSERT_TRUE(idx_->BeginRunRecord({3, 300, 0, "s", "u"}).ok());  // the refusal closed it
  ASSERT_TRUE(idx_->FinishRunRecord({3, 300, 310, "s", "u"}, 50).ok());
  EXPECT_EQ(idx_->Runs()->size(), 3u);
}

// entries_sha1 was never queried; an index that still has it loses it on open.
TEST_F(IndexDbTest, OpenDropsTheUnusedSha1Index) {
  idx_.reset();
  const std::string path = dir_.Sub("index.sqlite");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  auto count = [&db] {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name='entries_sha1'", -1, &s,
                       nullptr);
    sqlite3_step(s);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return n;
  };
  ASSERT_EQ(sqlite3_exec(db, "CREATE INDEX entries_sha1 ON entries(sha1)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  ASSERT_EQ(count(), 1);
  auto again = OpenOther(path);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(count(), 0);
  EXPECT_EQ(again->AllEntries()->size(), 7u);
  sqlite3_close(db);
}

// A process that dies with a run record open, after the record outgrew SQLite's page cache (so
// its pages were already written into the index file, the originals kept in the journal):
// the next open rolls the record back and the index is as it was.
TEST_F(IndexDbTest, ProcessKilledWithALargeOpenRecordLeavesTheCommittedIndex) {
  const std::string path = dir_.Sub("index.sqlite");
  idx_.reset();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto idx = IndexDb::Open(path);
    if (!idx.ok() || !(*idx)->BeginRunRecord({3, 300, 0, "s", "u"}).ok()) _exit(2);
    std::vector<Entry> batch;
    for (int i = 0; i < 600000; ++i) {
      batch.push_back(E("files/" + std::string(40, 'a') + std::to_string(i), 3, 40,
                        static_cast<uint64_t>(i) * 512));
      if (batch.size() == 10000) {
        if (!(*idx)->AddRunEntries(batch).ok()) _exit(3);
        batch.clear();
      }
    }
    _exit(0);  // no rollback, no close: as if killed
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  struct stat st;
  ASSERT_EQ(::stat((path + "-journal").c_str(), &st), 0) << "no hot journal: the record never spilled";
  EXPECT_GT(st.st_size, 0);
  auto again = OpenOther(path);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->AllEntries()->size(), 7u);
  EXPECT_EQ(again->Runs()->size(), 2u);
  EXPECT_EQ(*again->CommittedEnd(), 40u);
  ASSERT_TRUE(again->CommitRun({3, 300, 310, "s", "u"}, {E("b", 3, 40, 512)}, 50).ok());
}

// A reader that finds the index locked past the busy timeout (a large run holds its exclusive
// lock until it commits) gets kUnavailable saying why and what to do, not "database is locked".
TEST_F(IndexDbTest, ALockedIndexSaysWhoHoldsIt) {
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Sub("index.sqlite").c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto r = idx_->Latest("a");  // waits out the busy timeout
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("index.sqlite"), std::string::npos);
  EXPECT_NE(r.status().message().find("still running"), std::string::npos);
  EXPECT_TRUE(idx_->Latest("a").ok());
}

}  // namespace
}  // namespace cyrsync::snapshot
