#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "snapshot/archive.h"
#include "snapshot/archive_test_util.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::snapshot {
namespace {

using testing::ClockEnv;
using ::testing::HasSubstr;

class ReindexVerifyTest : public ::testing::Test {
 protected:
  ReindexVerifyTest() : env_(Env::Default()) {
    auto idx = IndexDb::Open(index_path());
    EXPECT_TRUE(idx.ok());
    idx_ = std::move(idx).value();
  }
  std::string archive() const { return dir_.Sub("u.tar.gz"); }
  std::string index_path() const { return dir_.Sub("u.sqlite"); }

  void Run(const std::function<void(ArchiveWriter*)>& fill, WriterOptions opts = {}) {
    env_.Set(env_.NowNanos() / 1000000000 + 3600);
    auto w = ArchiveWriter::BeginRun(&env_, archive(), idx_.get(), {0, 0, 0, "src", "bob"}, opts);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    fill(w->get());
    ASSERT_TRUE((*w)->Commit().ok());
  }
  // Three runs with the kinds of entries an archive holds, over several members.
  void WriteHistory(int level = 1) {
    WriterOptions opts{.compression_level = level, .member_target = 2048};
    Run(
        [](ArchiveWriter* w) {
          for (int i = 0; i < 4; ++i) {
            std::string m = "message " + std::to_string(i) + std::string(900, 'm');
            ASSERT_TRUE(w->AddFile("files/" + Sha1Hex(m), m, 100 + i).ok());
          }
          ASSERT_TRUE(w->AddFile("folders/U1/cyrus.index", "idx1", 5).ok());
          ASSERT_TRUE(w->AddSymlink("imap/INBOX", "U1", 5).ok());
          ASSERT_TRUE(w->AddSymlink("imap/" + std::string(130, 'n'), "U2", 5).ok());
        },
        opts);
    Run(
        [](ArchiveWriter* w) {
          ASSERT_TRUE(w->AddFile("folders/U1/cyrus.index", "idx2", 6, 0640).ok());
          ASSERT_TRUE(
              w->AddSymlink("imap/" + std::string(130, 'n'), std::string(kTombstoneTarget), 6)
                  .ok());
        },
        opts);
    Run([](ArchiveWriter* w) { ASSERT_TRUE(w->AddFile("sieve/main", "keep;", -7).ok()); }, opts);
  }
  void Flip(uint64_t offset) {
    std::string bytes = testing::ReadWhole(&env_, archive());
    bytes[offset] ^= 0x20;
    testing::WriteWhole(&env_, archive(), bytes);
  }
  std::vector<std::string> Problems() {
    auto r = Verify(&env_, archive(), idx_.get());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->problems : std::vector<std::string>{"verify failed"};
  }
  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(index_path().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sql;
    sqlite3_close(db);
  }

  ::cyrsync::testing::TempDir dir_;
  ClockEnv env_;
  std::unique_ptr<IndexDb> idx_;
};

void ExpectSameIndex(IndexDb* a, IndexDb* b) {
  auto ea = a->AllEntries(), eb = b->AllEntries();
  ASSERT_TRUE(ea.ok() && eb.ok());
  ASSERT_EQ(ea->size(), eb->size());
  for (size_t i = 0; i < ea->size(); ++i) {
    const Entry &x = (*ea)[i], &y = (*eb)[i];
    EXPECT_EQ(testing::Describe(x), testing::Describe(y));
    EXPECT_EQ(x.loc.member_offset, y.loc.member_offset) << x.name;
    EXPECT_EQ(x.loc.member_length, y.loc.member_length) << x.name;
    EXPECT_EQ(x.loc.data_offset, y.loc.data_offset) << x.name;
    EXPECT_EQ(x.loc.size, y.loc.size) << x.name;
  }
  auto ra = a->Runs(), rb = b->Runs();
  ASSERT_EQ(ra->size(), rb->size());
  for (size_t i = 0; i < ra->size(); ++i) {
    EXPECT_EQ((*ra)[i].run_id, (*rb)[i].run_id);
    EXPECT_EQ((*ra)[i].started, (*rb)[i].started);
    EXPECT_EQ((*ra)[i].finished, (*rb)[i].finished);
    EXPECT_EQ((*ra)[i].source, (*rb)[i].source);
    EXPECT_EQ((*ra)[i].user, (*rb)[i].user);
  }
  EXPECT_EQ(*a->CommittedEnd(), *b->CommittedEnd());
  EXPECT_EQ(*a->GetTailState(), *b->GetTailState());
}

TEST_F(ReindexVerifyTest, ReindexFromTheArchiveAloneEqualsTheOriginal) {
  WriteHistory();
  ASSERT_TRUE(Reindex(&env_, archive(), dir_.Sub("rebuilt.sqlite")).ok());
  auto rebuilt = IndexDb::Open(dir_.Sub("rebuilt.sqlite"));
  ASSERT_TRUE(rebuilt.ok());
  ExpectSameIndex(idx_.get(), rebuilt->get());
  EXPECT_EQ(env_.Stat(dir_.Sub("rebuilt.sqlite.reindex-tmp")).status().code(), Code::kNotFound);
}

TEST_F(ReindexVerifyTest, ReindexLeavesATornTailPendingForTheNextRun) {
  WriteHistory();
  const uint64_t end = *idx_->CommittedEnd();
  {
    auto w = ArchiveWriter::BeginRun(&env_, archive(), idx_.get(), {}, {});
    ASSERT_TRUE(w.ok());
    std::string noise(3 << 20, '\0');
    uint32_t x = 7;
    for (char& c : noise) c = static_cast<char>((x = x * 1664525 + 1013904223) >> 24);
    ASSERT_TRUE((*w)->AddFile("user/x", noise, 1).ok());  // incompressible: partly written out
  }
  const uint64_t size = env_.Stat(archive())->size;
  ASSERT_GT(size, end + 100);
  ASSERT_TRUE(env_.Truncate(archive(), size - 50).ok());  // torn inside the last member
  idx_.reset();
  ASSERT_TRUE(Reindex(&env_, archive(), index_path()).ok());
  auto idx = IndexDb::Open(index_path());
  ASSERT_TRUE(idx.ok());
  idx_ = std::move(idx).value();
  EXPECT_EQ(idx_->Runs()->size(), 3u);
  EXPECT_EQ(*idx_->CommittedEnd(), end);
  EXPECT_EQ(*idx_->GetTailState(), TailState::kRunPending);
  Run([](ArchiveWriter* w) { ASSERT_TRUE(w->AddFile("user/y", "y", 1).ok()); });
  EXPECT_EQ(idx_->Runs()->back().run_id, 4);
  EXPECT_TRUE(Problems().empty());
}

TEST_F(ReindexVerifyTest, ReindexRefusesDamageInTheMiddle) {
  WriteHistory();
  auto inbox = idx_->Latest("files/" + Sha1Hex("message 1" + std::string(900, 'm')));
  ASSERT_TRUE(inbox.ok() && inbox->has_value());
  Flip((*inbox)->loc.member_offset + (*inbox)->loc.member_length / 2);
  Status st = Reindex(&env_, archive(), dir_.Sub("other.sqlite"));
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_THAT(st.message(), HasSubstr("offset " + std::to_string((*inbox)->loc.member_offset)));
  EXPECT_EQ(env_.Stat(dir_.Sub("other.sqlite")).status().code(), Code::kNotFound);
}

TEST_F(ReindexVerifyTest, VerifyAcceptsAConsistentPair) {
  WriteHistory();
  auto r = Verify(&env_, archive(), idx_.get());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok()) << ::testing::PrintToString(r->problems);
  EXPECT_EQ(r->entries, idx_->AllEntries()->size());
  EXPECT_GE(r->members, 9u);  // 3 runs x (start + end + at least one data member)
}

TEST_F(ReindexVerifyTest, VerifyNamesTheDamagedMemberAndGoesOn) {
  WriteHistory();
  auto victim = idx_->Latest("folders/U1/cyrus.index", 1);
  ASSERT_TRUE(victim.ok() && victim->has_value());
  const uint64_t off = (*victim)->loc.member_offset;
  Flip(off + (*victim)->loc.member_length / 2);
  auto problems = Problems();
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0], HasSubstr("gzip member at offset " + std::to_string(off)));
}

// A byte of a file's content changes while the gzip member stays valid (stored blocks with a
// recomputed trailer): only the sha1 check can see it.
TEST_F(ReindexVerifyTest, VerifyDetectsContentThatDoesNotHashToItsName) {
  WriteHistory(/*level=*/0);
  std::string m = "message 2" + std::string(900, 'm');
  auto e = idx_->Latest("files/" + Sha1Hex(m));
  ASSERT_TRUE(e.ok() && e->has_value());
  const Entry victim = **e;
  std::string bytes = testing::ReadWhole(&env_, archive());
  std::string member = bytes.substr(victim.loc.member_offset, victim.loc.member_length);
  auto inflater = MemberInflater::Create();
  std::string plain;
  for (size_t at = 0; at < member.size();) {
    auto step = (*inflater)->Next(std::string_view(member).substr(at));
    ASSERT_TRUE(step.ok());
    at += step->consumed;
    plain.append(step->output);
    if (step->member_end) break;
  }
  plain[victim.loc.data_offset + 3] ^= 1;
  auto d = MemberDeflater::Create(0);
  ASSERT_TRUE((*d)->Add(plain).ok() && (*d)->Finish().ok());
  std::string redone = (*d)->TakeOutput();
  ASSERT_EQ(redone.size(), member.size());
  bytes.replace(victim.loc.member_offset, member.size(), redone);
  testing::WriteWhole(&env_, archive(), bytes);

  auto problems = Problems();
  ASSERT_EQ(problems.size(), 2u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0], HasSubstr("bad sha1: content of " + victim.name));
  EXPECT_THAT(problems[1], HasSubstr("sha1 of " + victim.name));
  EXPECT_EQ(ReadEntry(&env_, archive(), victim).status().code(), Code::kCorruption);
}

TEST_F(ReindexVerifyTest, VerifyDetectsIndexArchiveDisagreement) {
  WriteHistory();
  idx_.reset();
  Sql("UPDATE entries SET mtime = 99 WHERE name = 'sieve/main'");
  Sql("DELETE FROM entries WHERE name = 'imap/INBOX'");
  Sql("INSERT INTO entries SELECT 'ghost', kind, link_target, sha1, mtime, mode, run_id, "
      "member_offset, member_length, data_offset + 1, size FROM entries WHERE name = "
      "'folders/U1/cyrus.index' AND run_id = 2");
  Sql("UPDATE runs SET source = 'elsewhere' WHERE run_id = 2");
  auto idx = IndexDb::Open(index_path());
  ASSERT_TRUE(idx.ok());
  idx_ = std::move(idx).value();
  auto problems = Problems();
  std::string all = ::testing::PrintToString(problems);
  EXPECT_EQ(problems.size(), 4u) << all;
  EXPECT_THAT(all, HasSubstr("on the mtime of sieve/main"));
  EXPECT_THAT(all, HasSubstr("archive entry imap/INBOX is not in the index"));
  EXPECT_THAT(all, HasSubstr("index entry ghost is missing from the archive"));
  EXPECT_THAT(all, HasSubstr("index run 2 disagrees"));
}

}  // namespace
}  // namespace cyrsync::snapshot
