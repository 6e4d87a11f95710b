#include "snapshot/archive.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "snapshot/archive_test_util.h"
#include "snapshot/run_marker.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::snapshot {
namespace {

using testing::ClockEnv;
using ::testing::HasSubstr;

class ArchiveTest : public ::testing::Test {
 protected:
  ArchiveTest() : env_(Env::Default()) { ReopenIndex(); }
  std::string archive() const { return dir_.Sub("user.tar.gz"); }
  std::string index_path() const { return dir_.Sub("user.sqlite"); }
  void ReopenIndex() {
    idx_.reset();
    auto idx = IndexDb::Open(index_path());
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    idx_ = std::move(idx).value();
  }
  std::unique_ptr<ArchiveWriter> Begin(const WriterOptions& opts = {}) {
    auto w = ArchiveWriter::BeginRun(&env_, archive(), idx_.get(),
                                     {0, 0, 0, "replica 10.0.0.2:7401", "alice"}, opts);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }
  RunInfo CommitRun(const std::function<void(ArchiveWriter*)>& fill,
                    const WriterOptions& opts = {}) {
    auto w = Begin(opts);
    if (!w) return {};
    fill(w.get());
    auto run = w->Commit();
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    return run.ok() ? *run : RunInfo{};
  }
  Entry Latest(const std::string& name) {
    auto e = idx_->Latest(name);
    EXPECT_TRUE(e.ok() && e->has_value()) << name;
    return e.ok() && e->has_value() ? **e : Entry{};
  }
  std::string Read(const Entry& e) {
    auto data = ReadEntry(&env_, archive(), e);
    EXPECT_TRUE(data.ok()) << data.status().ToString();
    return data.ok() ? *data : "";
  }

  ::cyrsync::testing::TempDir dir_;
  ClockEnv env_;
  std::unique_ptr<IndexDb> idx_;
};

void Add(ArchiveWriter* w, const std::string& name, const std::string& data, int64_t mtime = 5) {
  ASSERT_TRUE(w->AddFile(name, data, mtime).ok()) << name;
}

std::string Msg(int i) { return "Subject: message " + std::to_string(i) + "\r\n\r\nbody\r\n"; }

TEST_F(ArchiveTest, WritesRunsAndReadsEntriesBack) {
  RunInfo r1 = CommitRun([](ArchiveWriter* w) {
    Add(w, "files/" + Sha1Hex(Msg(1)), Msg(1));
    Add(w, "folders/U1/cyrus.index", "index v1");
    ASSERT_TRUE(w->AddSymlink("imap/INBOX", "U1", 7).ok());
    Add(w, "user/alice.seen", "seen");
  });
  EXPECT_EQ(r1.run_id, 1);
  EXPECT_EQ(r1.finished, 1700000000);
  env_.Set(1700000500);
  RunInfo r2 = CommitRun([](ArchiveWriter* w) { Add(w, "folders/U1/cyrus.index", "index v2"); });
  EXPECT_EQ(r2.run_id, 2);

  EXPECT_EQ(Read(Latest("folders/U1/cyrus.index")), "index v2");
  auto old = idx_->Latest("folders/U1/cyrus.index", 1);
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_EQ(Read(**old), "index v1");
  EXPECT_EQ(Read(Latest("files/" + Sha1Hex(Msg(1)))), Msg(1));
  Entry link = Latest("imap/INBOX");
  EXPECT_EQ(link.kind, EntryKind::kSymlink);
  EXPECT_EQ(link.mode, 0777u);
  EXPECT_EQ(Read(link), "U1");
  EXPECT_TRUE(*idx_->HasFile(Sha1Hex(Msg(1))));

  auto runs = idx_->Runs();
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[1].finished, 1700000500);
  EXPECT_EQ((*runs)[0].source, "replica 10.0.0.2:7401");
  auto marker = DecodeRunMarker(Read(Latest("runs/2.json")), false);
  ASSERT_TRUE(marker.ok());
  EXPECT_EQ(marker->user, "alice");
  EXPECT_EQ(*idx_->CommittedEnd(), env_.Stat(archive())->size);
  EXPECT_EQ(*idx_->GetTailState(), TailState::kNone);
  auto report = Verify(&env_, archive(), idx_.get());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
}

TEST_F(ArchiveTest, MembersFollowTheTargetAndMarkersStandAlone) {
  WriterOptions opts{.compression_level = 6, .member_target = 4096};
  CommitRun(
      [](ArchiveWriter* w) {
        for (int i = 0; i < 20; ++i)
          Add(w, "user/f" + std::to_string(i), std::string(1000, 'a' + i));
        Add(w, "user/big", std::string(20000, 'B'));  // larger than the target: one member anyway
      },
      opts);
  auto all = idx_->AllEntries();
  ASSERT_TRUE(all.ok());
  std::map<uint64_t, std::vector<Entry>> members;
  for (const Entry& e : *all) members[e.loc.member_offset].push_back(e);
  EXPECT_GE(members.size(), 7u);
  uint64_t expect_offset = 0;
  for (const auto& [offset, entries] : members) {
    EXPECT_EQ(offset, expect_offset);  // members are contiguous
    expect_offset = offset + entries.front().loc.member_length;
    // The input before the last entry of a member is below the target: entries never span.
    EXPECT_LT(entries.back().loc.data_offset - 512, opts.member_target + 512);
    if (ParseMarkerName(entries.front().name)) {
      EXPECT_EQ(entries.size(), 1u);
    }
  }
  EXPECT_EQ(expect_offset, *idx_->CommittedEnd());
  // ScanArchive finds exactly the indexed locations.
  std::vector<Entry> scanned;
  ASSERT_TRUE(ScanArchive(&env_, archive(), [&](const Entry& e) {
                scanned.push_back(e);
                return Status::Ok();
              }).ok());
  ASSERT_EQ(scanned.size(), all->size());
  for (size_t i = 0; i < scanned.size(); ++i) {
    EXPECT_EQ(testing::Describe(scanned[i]), testing::Describe((*all)[i]));
    EXPECT_EQ(scanned[i].loc.member_length, (*all)[i].loc.member_length);
    EXPECT_EQ(scanned[i].loc.data_offset, (*all)[i].loc.data_offset);
  }
  EXPECT_EQ(Read(Latest("user/big")), std::string(20000, 'B'));
}

// Members cut at the target are compressed in the background while the next one fills; they
// still reach the file in order, and every entry is found where the index says.
TEST_F(ArchiveTest, MembersCompressedInTheBackgroundReadBackInOrder) {
  WriterOptions opts{.compression_level = 1, .member_target = 32 << 10};
  std::vector<std::pair<std::string, std::string>> files;
  uint32_t x = 7;
  for (int i = 0; i < 400; ++i) {
    std::string data = Msg(i) + std::string(static_cast<size_t>(i * 37 % 5000), 'a' + i % 26);
    for (int k = 0; k < i % 700; ++k) {
      data += static_cast<char>((x = x * 1664525 + 1013904223) >> 24);
    }
    files.emplace_back("files/" + Sha1Hex(data), std::move(data));
  }
  CommitRun(
      [&](ArchiveWriter* w) {
        for (const auto& [name, data] : files) Add(w, name, data);
      },
      opts);
  auto all = idx_->AllEntries();
  ASSERT_TRUE(all.ok());
  std::set<uint64_t> members;
  for (const Entry& e : *all) members.insert(e.loc.member_offset);
  EXPECT_GE(members.size(), 20u);
  for (const auto& [name, data] : files) EXPECT_EQ(Read(Latest(name)), data) << name;
  auto report = Verify(&env_, archive(), idx_.get());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
}

// Three data members (A, B, C) between the run's marker members.
class ThreeMemberTest : public ArchiveTest {
 protected:
  void SetUp() override {
    CommitRun(
        [](ArchiveWriter* w) {
          Add(w, "user/A", std::string(3000, 'A'));
          Add(w, "user/B", std::string(3000, 'B'));
          Add(w, "user/C", std::string(3000, 'C'));
        },
        {.compression_level = 1, .member_target = 1024});
    a_ = Latest("user/A");
    b_ = Latest("user/B");
    c_ = Latest("user/C");
    ASSERT_LT(a_.loc.member_offset, b_.loc.member_offset);
    ASSERT_LT(b_.loc.member_offset, c_.loc.member_offset);
  }
  void Flip(uint64_t offset) {
    std::string bytes = testing::ReadWhole(Env::Default(), archive());
    bytes[offset] ^= 0x55;
    testing::WriteWhole(Env::Default(), archive(), bytes);
  }
  Entry a_, b_, c_;
};

TEST_F(ThreeMemberTest, ReadEntryReadsOnlyItsMember) {
  testing::RecordingEnv rec(Env::Default());
  auto data = ReadEntry(&rec, archive(), b_);
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  EXPECT_EQ(*data, std::string(3000, 'B'));
  ASSERT_FALSE(rec.reads().empty());
  for (const auto& r : rec.reads()) {
    EXPECT_GE(r.offset, b_.loc.member_offset);
    EXPECT_LE(r.offset + r.len, b_.loc.member_offset + b_.loc.member_length);
  }
}

TEST_F(ThreeMemberTest, DamageInOtherMembersDoesNotMatter) {
  Flip(a_.loc.member_offset + a_.loc.member_length / 2);
  Flip(c_.loc.member_offset + c_.loc.member_length / 2);
  EXPECT_EQ(Read(b_), std::string(3000, 'B'));
  auto bad = ReadEntry(&env_, archive(), a_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kCorruption);
  EXPECT_THAT(bad.status().message(), HasSubstr("offset " + std::to_string(a_.loc.member_offset)));
}

TEST_F(ThreeMemberTest, ScanOfTruncatedArchiveDeliversEarlierMembers) {
  auto all = idx_->AllEntries();
  const Entry& last = all->back();  // the end marker, alone in the last member
  ASSERT_EQ(last.name, "runs/1.end.json");
  ASSERT_TRUE(env_.Truncate(archive(), last.loc.member_offset + last.loc.member_length / 2).ok());
  std::vector<std::string> names;
  Status st = ScanArchive(&env_, archive(), [&](const Entry& e) {
    names.push_back(e.name);
    return Status::Ok();
  });
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_THAT(st.message(), HasSubstr("offset " + std::to_string(last.loc.member_offset)));
  EXPECT_EQ(names, (std::vector<std::string>{"runs/1.json", "user/A", "user/B", "user/C"}));

  // Cut inside C's member: A and B (and the start marker) are still delivered.
  ASSERT_TRUE(env_.Truncate(archive(), c_.loc.member_offset + c_.loc.member_length / 2).ok());
  names.clear();
  st = ScanArchive(&env_, archive(), [&](const Entry& e) {
    names.push_back(e.name);
    return Status::Ok();
  });
  EXPECT_THAT(st.message(), HasSubstr("offset " + std::to_string(c_.loc.member_offset)));
  EXPECT_EQ(names, (std::vector<std::string>{"runs/1.json", "user/A", "user/B"}));
}

TEST_F(ArchiveTest, BeginRunCutsTheTailOfAnUncommittedRun) {
  CommitRun([](ArchiveWriter* w) { Add(w, "user/a", "one"); });
  const uint64_t end1 = *idx_->CommittedEnd();
  {
    // Members of 1 MiB: adding user/c cuts user/b2's member, which writes out user/b's.
    auto w = Begin({.compression_level = 1, .member_target = 1 << 20});
    std::string noise(3 << 20, '\0');  // incompressible
    uint32_t x = 1;
    for (char& c : noise) c = static_cast<char>((x = x * 1664525 + 1013904223) >> 24);
    Add(w.get(), "user/b", noise);
    Add(w.get(), "user/b2", noise);
    Add(w.get(), "user/c", "lost");
    // user/b's member is written and its entry goes to the run's open index record (on the
    // recorder's thread): a reader opening the index meanwhile sees the committed run alone.
    auto reader = IndexDb::Open(index_path());
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    EXPECT_FALSE((*reader)->Latest("user/b")->has_value());
    EXPECT_EQ(*(*reader)->CommittedEnd(), end1);
    // Crash: the writer goes away without Commit; its start marker is already in the file.
  }
  const uint64_t torn = env_.Stat(archive())->size;
  EXPECT_GT(torn, end1 + (1 << 20));
  // The crash also tore the last member written: the tail ends inside a member.
  ASSERT_TRUE(env_.Truncate(archive(), torn - 1000).ok());
  EXPECT_EQ(*idx_->GetTailState(), TailState::kRunPending);
  ReopenIndex();
  RunInfo r2 = CommitRun([](ArchiveWriter* w) { Add(w, "user/d", "two"); });
  EXPECT_EQ(r2.run_id, 2);
  EXPECT_EQ(Latest("runs/2.json").loc.member_offset, end1);  // written where the tail was cut
  EXPECT_FALSE(idx_->Latest("user/c")->has_value());
  std::vector<std::string> names;
  ASSERT_TRUE(ScanArchive(&env_, archive(), [&](const Entry& e) {
                names.push_back(e.name);
                return Status::Ok();
              }).ok());
  EXPECT_EQ(names, (std::vector<std::string>{"runs/1.json", "user/a", "runs/1.end.json",
                                             "runs/2.json", "user/d", "runs/2.end.json"}));
  EXPECT_TRUE(Verify(&env_, archive(), idx_.get())->ok());
}

// Fails the commit of a run's record: the archive holds the synced run, the index does not.
class FailingCommitIndex : public testing::IndexDbWrapper {
 public:
  using IndexDbWrapper::IndexDbWrapper;
  Status CommitRun(const RunInfo&, const std::vector<Entry>&, uint64_t) override {
    return IOError("injected: disk full");
  }
  Status FinishRunRecord(const RunInfo&, uint64_t) override {
    target()->AbortRunRecord();
    return IOError("injected: disk full");
  }
};

TEST_F(ArchiveTest, CrashBetweenArchiveSyncAndIndexCommit) {
  CommitRun([](ArchiveWriter* w) { Add(w, "user/a", "one"); });
  const uint64_t end1 = *idx_->CommittedEnd();
  FailingCommitIndex failing(idx_.get());
  auto w = ArchiveWriter::BeginRun(&env_, archive(), &failing, {}, {});
  ASSERT_TRUE(w.ok());
  Add(w->get(), "user/b", "synced but never indexed");
  EXPECT_EQ((*w)->Commit().status().code(), Code::kIOError);
  EXPECT_GT(env_.Stat(archive())->size, end1);
  RunInfo r2 = CommitRun([](ArchiveWriter* w) { Add(w, "user/c", "two"); });
  EXPECT_EQ(r2.run_id, 2);
  EXPECT_FALSE(idx_->Latest("user/b")->has_value());
  EXPECT_EQ(*idx_->CommittedEnd(), env_.Stat(archive())->size);
  EXPECT_TRUE(Verify(&env_, archive(), idx_.get())->ok());
}

TEST_F(ArchiveTest, LostIndexIsRefusedThenRebuilt) {
  CommitRun([](ArchiveWriter* w) { Add(w, "user/a", "one"); });
  const uint64_t size = env_.Stat(archive())->size;
  idx_.reset();
  ASSERT_TRUE(env_.Remove(index_path()).ok());
  ReopenIndex();  // a fresh, empty index
  auto refused = ArchiveWriter::BeginRun(&env_, archive(), idx_.get(), {}, {});
  EXPECT_EQ(refused.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(env_.Stat(archive())->size, size);  // nothing was cut
  idx_.reset();
  auto rebuilt = OpenIndexForArchive(&env_, archive(), index_path());
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  idx_ = std::move(rebuilt).value();
  EXPECT_EQ(Read(Latest("user/a")), "one");
  EXPECT_EQ(CommitRun([](ArchiveWriter* w) { Add(w, "user/b", "two"); }).run_id, 2);
}

TEST_F(ArchiveTest, UnexplainedBytesAreNeverCut) {
  CommitRun([](ArchiveWriter* w) { Add(w, "user/a", "one"); });
  std::string bytes = testing::ReadWhole(&env_, archive()) + "not a gzip member";
  testing::WriteWhole(&env_, archive(), bytes);
  EXPECT_EQ(ArchiveWriter::BeginRun(&env_, archive(), idx_.get(), {}, {}).status().code(),
            Code::kFailedPrecondition);
  idx_.reset();
  // Rebuilding cannot help either: the junk is damage, not a torn append.
  auto r = OpenIndexForArchive(&env_, archive(), index_path());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_EQ(testing::ReadWhole(&env_, archive()), bytes);
  ReopenIndex();
  EXPECT_EQ(idx_->Runs()->size(), 1u);  // the old index is untouched
}

TEST_F(ArchiveTest, RejectsBadNamesWithoutPoisoningTheRun) {
  auto w = Begin();
  for (const char* bad : {"", "/abs", "a/../b", "a//b", "a/", "./a", "runs/1.json", "runs/x"}) {
    EXPECT_EQ(w->AddFile(bad, "x", 1).code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(w->AddSymlink("imap/X", "", 1).code(), Code::kInvalidArgument);
  EXPECT_TRUE(w->AddFile("user/ok", "fine", 1).ok());
  auto run = w->Commit();
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(w->AddFile("user/late", "x", 1).code(), Code::kFailedPrecondition);
  EXPECT_EQ(Read(Latest("user/ok")), "fine");
}

TEST_F(ArchiveTest, CommitIsAttemptedOnce) {
  auto w = Begin();
  Add(w.get(), "user/a", "one");
  ASSERT_TRUE(w->Commit().ok());
  EXPECT_EQ(w->Commit().status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(idx_->Runs()->size(), 1u);
  EXPECT_EQ(*idx_->CommittedEnd(), env_.Stat(archive())->size);
}

TEST_F(ArchiveTest, NewUserStartsFromNothing) {
  idx_.reset();
  auto idx = OpenIndexForArchive(&env_, archive(), index_path());
  ASSERT_TRUE(idx.ok()) << idx.status().ToString();
  idx_ = std::move(idx).value();
  EXPECT_TRUE(idx_->Runs()->empty());
  EXPECT_EQ(env_.Stat(archive()).status().code(), Code::kNotFound);
  EXPECT_EQ(CommitRun([](ArchiveWriter* w) { Add(w, "user/a", "one"); }).run_id, 1);
  EXPECT_EQ(ArchiveWriter::BeginRun(&env_, archive(), idx_.get(), {}, {.member_target = 0})
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(*idx_->GetTailState(), TailState::kNone);  // refused before anything changed
}

TEST_F(ArchiveTest, GnuTarReadsAndExtractsTheConcatenation) {
  if (!testing::HaveGnuTar()) GTEST_SKIP() << "/bin/tar missing";
  const std::string long_dir = "imap/" + std::string(60, 'L') + "/" + std::string(60, 'M');
  const std::string long_target = "../" + std::string(120, 't');
  CommitRun(
      [&](ArchiveWriter* w) {
        Add(w, "files/" + Sha1Hex(Msg(1)), Msg(1), 1700000000);
        Add(w, "folders/U1/cyrus.index", "index v1", 1700000000);
        ASSERT_TRUE(w->AddSymlink("imap/INBOX", "U1", 1700000000).ok());
        ASSERT_TRUE(w->AddSymlink("imap/Old", "U2", 1700000000).ok());
        Add(w, long_dir + "/long-file", std::string(5000, 'q'), 1700000000);
      },
      {.compression_level = 1, .member_target = 1024});
  CommitRun([&](ArchiveWriter* w) {
    Add(w, "folders/U1/cyrus.index", "index v2", 1700000100);
    ASSERT_TRUE(w->AddSymlink("imap/Old", std::string(kTombstoneTarget), 1700000100).ok());
    ASSERT_TRUE(w->AddSymlink(long_dir + "/long-link", long_target, 1700000100).ok());
  });
  const std::string listing = dir_.Sub("listing.txt"), out = dir_.Sub("x");
  ASSERT_TRUE(MakeDirs(&env_, out, 0755).ok());
  ASSERT_EQ(std::system(("/bin/tar tzf '" + archive() + "' > '" + listing + "'").c_str()), 0);
  std::string text = testing::ReadWhole(&env_, listing);
  std::multiset<std::string> listed;
  for (size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
    listed.insert(text.substr(at, nl - at));
  }
  std::multiset<std::string> indexed;
  auto all = idx_->AllEntries();
  ASSERT_TRUE(all.ok());
  for (const Entry& e : *all) indexed.insert(e.name);
  EXPECT_EQ(listed, indexed);
  ASSERT_EQ(std::system(("/bin/tar xzf '" + archive() + "' -C '" + out + "'").c_str()), 0);
  auto at = [&](const std::string& rel) { return out + "/" + rel; };
  EXPECT_EQ(testing::ReadWhole(&env_, at("folders/U1/cyrus.index")), "index v2");  // newest wins
  EXPECT_EQ(testing::ReadWhole(&env_, at("files/" + Sha1Hex(Msg(1)))), Msg(1));
  EXPECT_EQ(*env_.ReadLink(at("imap/INBOX")), "U1");
  EXPECT_EQ(*env_.ReadLink(at("imap/Old")), kTombstoneTarget);
  EXPECT_EQ(*env_.ReadLink(at(long_dir + "/long-link")), long_target);
  EXPECT_EQ(testing::ReadWhole(&env_, at(long_dir + "/long-file")), std::string(5000, 'q'));
  EXPECT_EQ(testing::ReadWhole(&env_, at("runs/2.end.json")), Read(Latest("runs/2.end.json")));
  EXPECT_EQ(env_.Stat(at("folders/U1/cyrus.index"))->mtime_ns, int64_t{1700000100} * 1000000000);
}

}  // namespace
}  // namespace cyrsync::snapshot
