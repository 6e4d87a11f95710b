// Store::Open rolls forward an install journal left by a crash (the journal format written by
// Store::InstallTogether, in <state_dir>/journal-*), and clears the staging directories; and
// InstallTogether makes the staged data durable before the journal that names it.
#include <gtest/gtest.h>

#include "replica/session_test_util.h"

namespace cyrsync::replica {
namespace {

using namespace ::cyrsync::replica::test;  // NOLINT(google-build-using-namespace)

class ReplicaStoreRecoveryTest : public ReplicaFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ReplicaFixture::SetUp());
    store_.reset();  // "crash": the tests lay out what a dead daemon left behind
    WriteFile(Spool("user/bob/cyrus.header"), "old-header");
    WriteFile(Spool("user/bob/cyrus.index"), "old-index");
    fs::create_directories(Spool(".cyrsync-tmp"));
    staged_header_ = Spool(".cyrsync-tmp/999-1");
    staged_index_ = Spool(".cyrsync-tmp/999-2");
    final_header_ = Spool("user/bob/cyrus.header");
    final_index_ = Spool("user/bob/cyrus.index");
    journal_ = opts_.state_dir + "/journal-999-3";
  }
  std::string staged_header_, staged_index_, final_header_, final_index_, journal_;
};

TEST_F(ReplicaStoreRecoveryTest, JournalRoundTrip) {
  std::vector<StagedFile> files = {{"/a/.cyrsync-tmp/1-1", "/a/b/cyrus.header"},
                                   {"/a/.cyrsync-tmp/1-2", "/a/b/cyrus.index"}};
  std::string text = EncodeJournal(files);
  EXPECT_EQ(text,
            "cyrsync-journal 2\n/a/.cyrsync-tmp/1-1\t/a/b/cyrus.header\n"
            "/a/.cyrsync-tmp/1-2\t/a/b/cyrus.index\nend\n");
  auto back = DecodeJournal(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[1].staged, files[1].staged);
  EXPECT_EQ((*back)[1].final, files[1].final);
  EXPECT_FALSE(DecodeJournal("no tab\n").ok());
  EXPECT_FALSE(DecodeJournal("a\tb").ok());  // unterminated
  // Version 1 (atomically written, no header or end line) still reads.
  auto v1 = DecodeJournal("/s/1\t/f/cyrus.index\n");
  ASSERT_TRUE(v1.ok());
  EXPECT_EQ((*v1)[0].final, "/f/cyrus.index");
  // Every prefix of a version 2 journal short of its end line is incomplete.
  for (size_t n = 0; n + 1 < text.size(); ++n) {
    if (n < 18) continue;  // shorter than the header line: read as version 1 (see below)
    EXPECT_FALSE(DecodeJournal(text.substr(0, n)).ok()) << n;
  }
  EXPECT_EQ(DecodeJournal(text.substr(0, text.size() - 4)).status().code(), Code::kAborted);
  EXPECT_FALSE(DecodeJournal(text + "x\n").ok());
}

TEST_F(ReplicaStoreRecoveryTest, JournalCutShortIsDroppedAndNothingIsRenamed) {
  WriteFile(staged_header_, "new-header");
  WriteFile(staged_index_, "new-index");
  WriteFile(final_header_, "old-header");
  WriteFile(final_index_, "old-index");
  std::string text = EncodeJournal({{staged_header_, final_header_}, {staged_index_, final_index_}});
  WriteFile(journal_, text.substr(0, text.size() - 4));  // the crash came before the syncfs
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(ReadFile(final_header_), "old-header");
  EXPECT_EQ(ReadFile(final_index_), "old-index");
  EXPECT_FALSE(Exists(journal_));
  EXPECT_FALSE(Exists(staged_header_));  // staging is cleaned at start
}

TEST_F(ReplicaStoreRecoveryTest, CrashBeforeAnyRenameCompletesAll) {
  WriteFile(staged_header_, "new-header");
  WriteFile(staged_index_, "new-index");
  WriteFile(journal_, EncodeJournal({{staged_header_, final_header_}, {staged_index_, final_index_}}));
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(ReadFile(final_header_), "new-header");
  EXPECT_EQ(ReadFile(final_index_), "new-index");
  EXPECT_FALSE(Exists(staged_header_));
  EXPECT_FALSE(Exists(staged_index_));
  EXPECT_FALSE(Exists(journal_)) << "journal not removed after roll-forward";
}

TEST_F(ReplicaStoreRecoveryTest, CrashAfterFirstRenameCompletesTheRest) {
  // cyrus.header was already renamed into place; cyrus.index (last) was not.
  WriteFile(final_header_, "new-header");
  WriteFile(staged_index_, "new-index");
  WriteFile(journal_, EncodeJournal({{staged_header_, final_header_}, {staged_index_, final_index_}}));
  // A stray staged file of an install that never reached its journal.
  WriteFile(Spool(".cyrsync-tmp/999-7"), "stray");
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(ReadFile(final_header_), "new-header");
  EXPECT_EQ(ReadFile(final_index_), "new-index");
  EXPECT_FALSE(Exists(staged_index_));
  EXPECT_FALSE(Exists(journal_));
  EXPECT_FALSE(Exists(Spool(".cyrsync-tmp/999-7"))) << "staging directory not cleared";
  // A second open finds nothing to do.
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(ReadFile(final_index_), "new-index");
}

TEST_F(ReplicaStoreRecoveryTest, CrashAfterAllRenamesJustRemovesJournal) {
  WriteFile(final_header_, "new-header");
  WriteFile(final_index_, "new-index");
  WriteFile(journal_, EncodeJournal({{staged_header_, final_header_}, {staged_index_, final_index_}}));
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(ReadFile(final_header_), "new-header");
  EXPECT_EQ(ReadFile(final_index_), "new-index");
  EXPECT_FALSE(Exists(journal_));
}

TEST_F(ReplicaStoreRecoveryTest, JournalNotYetDurableIsNotApplied) {
  // Crash while AtomicWriteFile was still writing the journal: only its temp file exists, so
  // the install never started; the old set stays and the staged files are discarded.
  WriteFile(staged_header_, "new-header");
  WriteFile(staged_index_, "new-index");
  WriteFile(journal_ + ".cyrsync-tmp",
            EncodeJournal({{staged_header_, final_header_}, {staged_index_, final_index_}}));
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(ReadFile(final_header_), "old-header");
  EXPECT_EQ(ReadFile(final_index_), "old-index");
  EXPECT_FALSE(Exists(staged_header_));
  EXPECT_FALSE(Exists(staged_index_));
}

TEST_F(ReplicaStoreRecoveryTest, ServesNormallyAfterRecovery) {
  WriteFile(staged_index_, "new-index");
  WriteFile(journal_, EncodeJournal({{staged_index_, final_index_}}));
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  Peer& p = Connect();
  ASSERT_TRUE(PutFile(p, {"configdirectory", "mailboxes.db"}, "db",
                      {2, 1700000000000000000, 1700000000000000000, 1})
                  .ok());
  EXPECT_EQ(ReadFile(Conf("mailboxes.db")), "db");
  EXPECT_EQ(ReadFile(final_index_), "new-index");
}

// Records the order of the durability-relevant calls.
class OrderEnv : public EnvWrapper {
 public:
  OrderEnv() : EnvWrapper(Env::Default()) {}
  std::vector<std::string> ops;
  Status SyncFileSystem(const std::string& p) override {
    ops.push_back("syncfs " + Basename(p));
    return EnvWrapper::SyncFileSystem(p);
  }
  Status SyncDir(const std::string& p) override {
    ops.push_back("syncdir " + Basename(p));
    return EnvWrapper::SyncDir(p);
  }
  Result<std::unique_ptr<WritableFile>> NewWritable(const std::string& p, uint32_t mode) override {
    ops.push_back("create " + Basename(p).substr(0, 7));
    return EnvWrapper::NewWritable(p, mode);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    ops.push_back("rename " + Basename(to));
    return EnvWrapper::Rename(from, to);
  }
};

TEST_F(ReplicaStoreRecoveryTest, StagedDataIsDurableBeforeTheJournalNamesIt) {
  OrderEnv env;
  auto store = Store::Open(&env, *conf_, opts_, NullLogger());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto staged = (*store)->NewStagePath({"partition-default", "user/bob/cyrus.index"});
  ASSERT_TRUE(staged.ok());
  WriteFile(*staged, "new-index");
  env.ops.clear();
  ASSERT_TRUE((*store)->InstallTogether({{*staged, final_index_}}).ok());
  const std::vector<std::string> want = {"syncfs .cyrsync-tmp", "create journal",
                                         "syncdir state", "rename cyrus.index", "syncdir bob"};
  EXPECT_EQ(env.ops, want);
  EXPECT_EQ(ReadFile(final_index_), "new-index");
}

// A daemon killed while an exchange staged message files in a folder directory: the hidden temp
// files its note names are removed at the next start, after the journals were rolled forward
// (a journaled temp file is installed, not removed); message files stay.
TEST_F(ReplicaStoreRecoveryTest, StagingNoteOfAKilledExchangeIsCleaned) {
  const std::string dir = Spool("user/bob");
  WriteFile(dir + "/1.", "message one");
  WriteFile(dir + "/.cyrsync-999-7", "half a message");
  WriteFile(dir + "/.cyrsync-999-8", "journaled message");
  WriteFile(Spool("user/other.cyrsync-999-9"), "not in a noted directory");
  WriteFile(dir + "/.cyrsync-notes", "not a temp file name");
  WriteFile(journal_, EncodeJournal({{dir + "/.cyrsync-999-8", dir + "/2."}}));
  const std::string note = opts_.state_dir + "/staging-999-6";
  WriteFile(note, dir + "\n" + Spool("user/gone") + "\n");
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_FALSE(Exists(dir + "/.cyrsync-999-7"));
  EXPECT_EQ(ReadFile(dir + "/2."), "journaled message");
  EXPECT_EQ(ReadFile(dir + "/1."), "message one");
  EXPECT_TRUE(Exists(Spool("user/other.cyrsync-999-9")));
  EXPECT_TRUE(Exists(dir + "/.cyrsync-notes"));
  EXPECT_FALSE(Exists(note));
}

TEST_F(ReplicaStoreRecoveryTest, StagingNotesComeAndGoWithTheExchange) {
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  auto note = store_->BeginStagingIn({Spool("user/bob")});
  ASSERT_TRUE(note.ok()) << note.status().ToString();
  EXPECT_EQ(ReadFile(*note), Spool("user/bob") + "\n");
  const std::string tmp = store_->NewStagePathIn(Spool("user/bob"));
  EXPECT_EQ(Dirname(tmp), Spool("user/bob"));
  EXPECT_EQ(Basename(tmp).rfind(".cyrsync-", 0), 0u);
  EXPECT_FALSE(store_->IsStaleStageName(Basename(tmp)));   // ours
  EXPECT_TRUE(store_->IsStaleStageName(".cyrsync-1-5"));  // pid 1 is never a daemon
  EXPECT_FALSE(store_->IsStaleStageName("12."));
  EXPECT_FALSE(store_->IsStaleStageName(".cyrsync-keep"));  // not our temp name pattern
  EXPECT_FALSE(store_->IsStaleStageName(".cyrsync-12-"));
  EXPECT_FALSE(store_->IsStaleStageName(".cyrsync-tmp"));
  EXPECT_FALSE(store_->IsStaleStageName("cyrus.index"));
  store_->EndStaging(*note);
  EXPECT_FALSE(Exists(*note));
}

TEST_F(ReplicaStoreRecoveryTest, OneStoreAtATimePerStateDirectory) {
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  auto second = Store::Open(Env::Default(), *conf_, opts_, NullLogger());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(second.status().ToString().find(opts_.state_dir), std::string::npos);
  store_.reset();
  auto again = Store::Open(Env::Default(), *conf_, opts_, NullLogger());
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

}  // namespace
}  // namespace cyrsync::replica
