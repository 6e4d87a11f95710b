#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "snapshot/archive.h"
#include "snapshot/archive_test_util.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::snapshot {
namespace {

using testing::BuildIndexV17;
using testing::ClockEnv;
using ::testing::HasSubstr;
using testing::TestMessage;

constexpr int64_t kT0 = 1700000000;
constexpr int64_t kDay = 86400;

// Fails Rename(from, ...) for one chosen source path.
class FailRenameEnv : public EnvWrapper {
 public:
  FailRenameEnv(Env* t, std::string from) : EnvWrapper(t), from_(std::move(from)) {}
  Status Rename(const std::string& f, const std::string& t) override {
    if (f == from_) return IOError("injected: rename " + f);
    return EnvWrapper::Rename(f, t);
  }
  int64_t NowNanos() override { return (kT0 + 41 * kDay) * 1000000000; }

 private:
  std::string from_;
};

std::string Body(int i) {
  std::string s = "Message-Id: <" + std::to_string(i) + "@example.org>\r\n\r\n";
  uint32_t x = static_cast<uint32_t>(i) * 7919u + 1;
  for (int k = 0; k < 6000; ++k) s.push_back(static_cast<char>('a' + ((x = x * 69069 + 1) >> 27)));
  return s;
}

std::string FileName(int i) { return "files/" + Sha1Hex(Body(i)); }

class CompactTest : public ::testing::Test {
 protected:
  CompactTest() : env_(Env::Default(), kT0) { Open(); }
  std::string archive() const { return dir_.Sub("alice.tar.gz"); }
  std::string index_path() const { return dir_.Sub("alice.sqlite"); }
  void Open() {
    idx_.reset();
    auto idx = OpenIndexForArchive(&env_, archive(), index_path());
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    idx_ = std::move(idx).value();
  }
  void Run(int64_t started, const std::function<void(ArchiveWriter*)>& fill) {
    env_.Set(started + 60);
    auto w = ArchiveWriter::BeginRun(&env_, archive(), idx_.get(), {0, started, 0, "s", "alice"},
                                     {.compression_level = 1, .member_target = 8192});
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    fill(w->get());
    ASSERT_TRUE((*w)->Commit().ok());
  }
  static void Folder(ArchiveWriter* w, const std::string& uid, std::vector<int> msgs,
                     bool with_files = true) {
    std::vector<TestMessage> tm;
    for (int i : msgs) {
      tm.push_back({static_cast<uint32_t>(i), Body(i)});
      if (with_files) {
        ASSERT_TRUE(w->AddFile(FileName(i), Body(i), kT0).ok());
      }
    }
    ASSERT_TRUE(w->AddFile("folders/" + uid + "/cyrus.index", BuildIndexV17(tm), kT0).ok());
  }
  static void Link(ArchiveWriter* w, const std::string& name, std::string_view target) {
    ASSERT_TRUE(w->AddSymlink("imap/" + name, target, kT0).ok());
  }

  // Folders renamed and deleted, a message dropped from an index, metadata rewritten.
  void WriteHistory() {
    Run(kT0, [](ArchiveWriter* w) {
      Folder(w, "U1", {1, 2});
      ASSERT_TRUE(w->AddFile("folders/U1/cyrus.header", "header v1", kT0).ok());
      Folder(w, "U2", {3});
      Folder(w, "U3", {4});
      Folder(w, "U4", {5});
      Link(w, "INBOX", "U1");
      Link(w, "Work", "U2");
      Link(w, "Old", "U3");
      Link(w, "Trash", "U4");
      ASSERT_TRUE(w->AddFile("user/alice.seen", "seen v1", kT0).ok());
      ASSERT_TRUE(w->AddFile("sieve/main.script", "keep;", kT0).ok());
    });
    Run(kT0 + kDay, [](ArchiveWriter* w) {
      ASSERT_TRUE(w->AddFile(FileName(6), Body(6), kT0).ok());
      Folder(w, "U1", {1, 6}, /*with_files=*/false);  // message 2 expunged and unlinked
      Link(w, "Projects", "U2");                      // Work renamed to Projects
      Link(w, "Work", kTombstoneTarget);
      Link(w, "Old", kTombstoneTarget);  // Old deleted 40 days before "now"
      ASSERT_TRUE(w->AddFile("user/alice.seen", "seen v2", kT0).ok());
    });
    Run(kT0 + 40 * kDay, [](ArchiveWriter* w) {
      Link(w, "Trash", kTombstoneTarget);  // deleted a day before "now": still retained
      ASSERT_TRUE(w->AddFile("folders/U1/cyrus.header", "header v2", kT0).ok());
    });
  }
  CompactPolicy Policy(bool force = false) {
    return {.now = kT0 + 41 * kDay, .retention_seconds = 30 * kDay, .force = force};
  }
  size_t Versions(const std::string& name) {
    auto all = idx_->AllEntries();
    EXPECT_TRUE(all.ok());
    size_t n = 0;
    for (const Entry& e : *all) n += e.name == name;
    return n;
  }

  ::cyrsync::testing::TempDir dir_;
  ClockEnv env_;
  std::unique_ptr<IndexDb> idx_;
};

TEST_F(CompactTest, KeepsWhatIsRestorableAndDropsTheRest) {
  WriteHistory();
  auto before = testing::DescribeLatest(idx_.get());
  auto runs_before = *idx_->Runs();
  idx_.reset();

  auto r = Compact(&env_, archive(), index_path(), Policy());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->compacted);
  EXPECT_LT(r->live_share, r->threshold);
  EXPECT_LT(r->bytes_after, r->bytes_before);
  EXPECT_EQ(r->bytes_after, env_.Stat(archive())->size);
  Open();

  // Gone: expired tombstones, the deleted folder they hid, and unreferenced messages.
  for (const std::string& dropped :
       {std::string("imap/Work"), std::string("imap/Old"), std::string("folders/U3/cyrus.index"),
        FileName(2), FileName(4)}) {
    ASSERT_EQ(before.erase(dropped), 1u) << dropped;
  }
  EXPECT_EQ(testing::DescribeLatest(idx_.get()), before);  // everything else unchanged

  // The retained deletion can still be undone: the link it replaced and the folder remain.
  auto trash = idx_->Latest("imap/Trash", 2);
  ASSERT_TRUE(trash.ok() && trash->has_value());
  EXPECT_EQ((*trash)->link_target, "U4");
  EXPECT_TRUE(*idx_->HasFile(Sha1Hex(Body(5))));
  // Old metadata versions are dropped.
  EXPECT_EQ(Versions("folders/U1/cyrus.index"), 1u);
  EXPECT_EQ(Versions("user/alice.seen"), 1u);
  EXPECT_EQ(Versions("folders/U1/cyrus.header"), 1u);
  EXPECT_EQ(idx_->Runs()->size(), runs_before.size());
  EXPECT_EQ(*idx_->LastCompaction(), kT0 + 41 * kDay);

  auto latest = idx_->LatestUnder("");
  ASSERT_TRUE(latest.ok());
  for (const Entry& e : *latest) {
    EXPECT_TRUE(ReadEntry(&env_, archive(), e).ok()) << e.name;
  }
  auto report = Verify(&env_, archive(), idx_.get());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
  EXPECT_EQ(env_.Stat(archive() + ".compact-tmp").status().code(), Code::kNotFound);

  // The compacted archive keeps growing normally.
  Run(kT0 + 42 * kDay,
      [](ArchiveWriter* w) { ASSERT_TRUE(w->AddFile("user/alice.seen", "seen v3", kT0).ok()); });
  EXPECT_EQ(idx_->Runs()->back().run_id, 4);
}

TEST_F(CompactTest, RetentionDecidesAboutTombstonedFolders) {
  WriteHistory();
  idx_.reset();
  CompactPolicy p = Policy(true);
  p.retention_seconds = 50 * kDay;  // every deletion is still young
  ASSERT_TRUE(Compact(&env_, archive(), index_path(), p).ok());
  Open();
  EXPECT_TRUE(idx_->Latest("imap/Old")->has_value());
  EXPECT_TRUE(idx_->Latest("folders/U3/cyrus.index")->has_value());
  EXPECT_TRUE(*idx_->HasFile(Sha1Hex(Body(4))));
  EXPECT_FALSE(*idx_->HasFile(Sha1Hex(Body(2))));  // expunged, whatever the retention
  idx_.reset();
  p.retention_seconds = 0;  // no deletion is kept
  ASSERT_TRUE(Compact(&env_, archive(), index_path(), p).ok());
  Open();
  EXPECT_FALSE(idx_->Latest("imap/Trash")->has_value());
  EXPECT_FALSE(idx_->Latest("folders/U4/cyrus.index")->has_value());
  EXPECT_FALSE(*idx_->HasFile(Sha1Hex(Body(5))));
  EXPECT_TRUE(*idx_->HasFile(Sha1Hex(Body(3))));  // renamed, not deleted
}

TEST_F(CompactTest, LeavesAMostlyLiveArchiveAloneUntilTheThresholdRises) {
  Run(kT0, [](ArchiveWriter* w) {
    Folder(w, "U1", {1, 2});
    Link(w, "INBOX", "U1");
  });
  Run(kT0 + kDay,
      [](ArchiveWriter* w) { ASSERT_TRUE(w->AddFile("user/alice.seen", "x", kT0).ok()); });
  const std::string bytes = testing::ReadWhole(&env_, archive());
  idx_.reset();
  CompactPolicy p = Policy();
  p.now = kT0 + kDay;
  auto r = Compact(&env_, archive(), index_path(), p);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->compacted);
  EXPECT_DOUBLE_EQ(r->live_share, 1.0);
  EXPECT_NEAR(r->threshold, 0.80 + 0.01 / 7, 1e-9);  // one day since the first run
  EXPECT_EQ(testing::ReadWhole(&env_, archive()), bytes);
  p.now = kT0 + 100 * 7 * kDay;
  r = Compact(&env_, archive(), index_path(), p);
  EXPECT_DOUBLE_EQ(r->threshold, 1.0);  // capped
  EXPECT_FALSE(r->compacted);           // nothing is dead: nothing to gain
}

// The step before the final rename (the archive's) fails: the old pair stays the pair.
TEST_F(CompactTest, InterruptedBeforeTheSwapLeavesTheOldPair) {
  WriteHistory();
  const std::string bytes = testing::ReadWhole(&env_, archive());
  const auto before = testing::DescribeLatest(idx_.get());
  const size_t entries = idx_->AllEntries()->size();
  idx_.reset();
  FailRenameEnv failing(Env::Default(), archive() + ".compact-tmp");
  auto r = Compact(&failing, archive(), index_path(), Policy());
  EXPECT_EQ(r.status().code(), Code::kIOError);
  EXPECT_EQ(testing::ReadWhole(&env_, archive()), bytes);
  auto idx = IndexDb::Open(index_path());
  ASSERT_TRUE(idx.ok());
  idx_ = std::move(idx).value();
  EXPECT_EQ(*idx_->GetTailState(), TailState::kNone);
  EXPECT_EQ(idx_->AllEntries()->size(), entries);
  EXPECT_EQ(testing::DescribeLatest(idx_.get()), before);
  EXPECT_EQ(env_.Stat(archive() + ".compact-tmp").status().code(), Code::kNotFound);
  EXPECT_EQ(env_.Stat(index_path() + ".compact-tmp").status().code(), Code::kNotFound);
  EXPECT_TRUE(Verify(&env_, archive(), idx_.get())->ok());
  idx_.reset();
  EXPECT_TRUE(Compact(&env_, archive(), index_path(), Policy())->compacted);  // can retry
}

// The final rename (the index's) fails: new archive, old index marked kSwapping. Opening the
// pair rebuilds the index from the new archive.
TEST_F(CompactTest, InterruptedBetweenTheRenamesIsRepairedByReindex) {
  WriteHistory();
  idx_.reset();
  FailRenameEnv failing(Env::Default(), index_path() + ".compact-tmp");
  EXPECT_FALSE(Compact(&failing, archive(), index_path(), Policy()).ok());
  {
    auto stale = IndexDb::Open(index_path());
    EXPECT_EQ(*(*stale)->GetTailState(), TailState::kSwapping);
    auto w = ArchiveWriter::BeginRun(&env_, archive(), stale->get(), {}, {});
    EXPECT_EQ(w.status().code(), Code::kFailedPrecondition);  // never cuts a mismatched pair
  }
  Open();  // OpenIndexForArchive: reindexes
  ASSERT_TRUE(Reindex(&env_, archive(), dir_.Sub("expected.sqlite")).ok());
  auto expected = IndexDb::Open(dir_.Sub("expected.sqlite"));
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(testing::DescribeLatest(idx_.get()), testing::DescribeLatest(expected->get()));
  EXPECT_FALSE(idx_->Latest("imap/Old")->has_value());  // it is the compacted archive
  EXPECT_TRUE(Verify(&env_, archive(), idx_.get())->ok());
}

}  // namespace
}  // namespace cyrsync::snapshot
