// FOLDER_BEGIN / FOLDER_NEED / MESSAGE_PUT / FOLDER_COMMIT / FOLDER_DELETE against a replica on a
// temp dir, with hand-built cyrus.index v17 images whose GUIDs are the SHA-1 of the bodies.
#include <gtest/gtest.h>

#include <fstream>

#include "replica/session_test_util.h"
#include "tests/testutil/counting_env.h"

namespace cyrsync::replica {
namespace {

using namespace ::cyrsync::replica::test;  // NOLINT(google-build-using-namespace)

const std::string kKey = "4a1c2e0f-uuid-bob";
const std::string kDir = "user/bob";

std::vector<TestRecord> TwoMessages() {
  return {{1, "From: a\r\n\r\nfirst message\r\n"}, {2, "From: b\r\n\r\nsecond message\r\n"}};
}

class ReplicaFolderTest : public ReplicaFixture {
 protected:
  // Installs uid 1 and 2 and checks the first exchange.
  void InstallFirst(Peer& p) {
    TestFolder f = MakeFolder(kKey, kDir, TwoMessages());
    std::vector<NeedItem> need;
    Status st = InstallFolder(p, f, TwoMessages(), &need);
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_EQ(NeedUids(need), (std::vector<uint32_t>{1, 2}));
    first_ = f;
  }
  TestFolder first_;
};

TEST_F(ReplicaFolderTest, FirstInstallAsksForEveryMessageAndInstallsAll) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  auto recs = TwoMessages();
  EXPECT_EQ(ReadFile(Spool(kDir + "/1.")), recs[0].body);
  EXPECT_EQ(ReadFile(Spool(kDir + "/2.")), recs[1].body);
  EXPECT_EQ(ReadFile(Spool(kDir + "/cyrus.header")), first_.bodies[0]);
  EXPECT_EQ(ReadFile(Spool(kDir + "/cyrus.index")), first_.bodies[1]);
  // Metadata carries the source mtime.
  struct stat st = LStat(Spool(kDir + "/cyrus.index"));
  EXPECT_EQ(int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec,
            first_.fb.files[1].source.mtime_ns);
  // Nothing left in the staging directory.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(Spool(".cyrsync-tmp"), ec)) {
    ADD_FAILURE() << "staged file left behind: " << e.path();
  }
  EXPECT_TRUE(EndSession().ok());
}

// Every file written after `full` is set fails as a full disk does (ENOSPC on write).
class FullDiskEnv final : public EnvWrapper {
 public:
  FullDiskEnv() : EnvWrapper(Env::Default()) {}
  std::atomic<bool> full{false};
  Result<std::unique_ptr<WritableFile>> NewWritable(const std::string& p, uint32_t mode) override {
    ASSIGN_OR_RETURN(auto f, EnvWrapper::NewWritable(p, mode));
    if (!full) return f;
    return std::unique_ptr<WritableFile>(new FullFile(std::move(f)));
  }

 private:
  class FullFile final : public WritableFile {
   public:
    explicit FullFile(std::unique_ptr<WritableFile> f) : f_(std::move(f)) {}
    Status Append(std::string_view data) override {
      return data.empty() ? Status::Ok() : PosixError("write " + f_->path(), ENOSPC);
    }
    Status Sync() override { return f_->Sync(); }
    Status Close() override { return f_->Close(); }
    Status Chown(uint32_t uid, uint32_t gid) override { return f_->Chown(uid, gid); }
    const std::string& path() const override { return f_->path(); }

   private:
    std::unique_ptr<WritableFile> f_;
  };
};

// The disk fills while an update of an installed folder is received, once while its metadata
// arrives and once while its new message does: the exchange fails with the error of the write
// that failed, the folder stays as installed (index and message files), no temp file is left,
// and the same update installs once there is room again.
class ReplicaFullDiskTest : public ReplicaFolderTest {
 protected:
  void SetUp() override {
    env_ = &env;  // the store is opened on it; members outlive TearDown's store_.reset()
    ReplicaFolderTest::SetUp();
  }
  FullDiskEnv env;
};

TEST_F(ReplicaFullDiskTest, AFullDiskLeavesTheInstalledFolderAsItWas) {
  ASSERT_NO_FATAL_FAILURE(InstallFirst(Connect()));
  ASSERT_TRUE(EndSession().ok());
  auto recs = TwoMessages();
  recs.push_back({3, "From: c\r\n\r\nthird message\r\n"});
  TestFolder update = MakeFolder(kKey, kDir, recs, "bob", 2);
  for (bool during_messages : {false, true}) {
    SCOPED_TRACE(during_messages ? "full while the message arrives" : "full while metadata arrives");
    Peer& p = Connect();
    env.full = !during_messages;
    SendFolderBegin(p, update);
    Status st = Status::Ok();
    auto need = RecvNeed(p);
    if (need.ok()) {
      EXPECT_EQ(NeedUids(*need), (std::vector<uint32_t>{3}));
      env.full = true;
      SendMessage(p, 3, recs[2].body);
      st = Commit(p);
    } else {
      st = need.status();
    }
    env.full = false;
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("No space left on device"), std::string::npos) << st.ToString();
    Status ended = EndSession();
    // What failed, what it was to become, and the temp file the write went to.
    const std::string what = during_messages ? " uid 3: write " : "/cyrus.header: write ";
    EXPECT_NE(ended.message().find("receiving "), std::string::npos) << ended.ToString();
    EXPECT_NE(ended.message().find(what + tmp_.path()), std::string::npos) << ended.ToString();
    EXPECT_EQ(ReadFile(Spool(kDir + "/cyrus.index")), first_.bodies[1]);
    EXPECT_EQ(ReadFile(Spool(kDir + "/1.")), TwoMessages()[0].body);
    EXPECT_EQ(ReadFile(Spool(kDir + "/2.")), TwoMessages()[1].body);
    EXPECT_FALSE(Exists(Spool(kDir + "/3.")));
    std::error_code ec;
    for (const auto& d : {Spool(".cyrsync-tmp"), Spool(kDir)}) {
      for (const auto& e : fs::directory_iterator(d, ec)) {
        const std::string name = e.path().filename().string();
        EXPECT_TRUE(name == "1." || name == "2." || name.rfind("cyrus.", 0) == 0)
            << "left behind: " << e.path();
      }
    }
  }
  std::vector<NeedItem> need;
  Status st = InstallFolder(Connect(), update, recs, &need);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(NeedUids(need), (std::vector<uint32_t>{3}));
  EXPECT_EQ(ReadFile(Spool(kDir + "/3.")), recs[2].body);
  EXPECT_EQ(ReadFile(Spool(kDir + "/cyrus.index")), update.bodies[1]);
}

// Renames into a cyrus.index fail while `refuse` is set (an install that fails after the OK).
class RefuseIndexRenameEnv final : public EnvWrapper {
 public:
  RefuseIndexRenameEnv() : EnvWrapper(Env::Default()) {}
  std::atomic<bool> refuse{false};
  Status Rename(const std::string& from, const std::string& to) override {
    if (refuse && Basename(to) == "cyrus.index") return IOError("rename refused (test): " + to);
    return EnvWrapper::Rename(from, to);
  }
};

class ReplicaQueuedInstallTest : public ReplicaFolderTest {
 protected:
  void SetUp() override {
    env_ = &env;
    ReplicaFolderTest::SetUp();
  }
  RefuseIndexRenameEnv env;
};

// FOLDER_COMMIT is answered once the install is queued; an install that fails after that OK is
// reported by FOLDER_FLUSH (naming the folder and the error) without ending the session, leaves
// the folder as installed and unrecorded, and the same update installs once renames work again.
TEST_F(ReplicaQueuedInstallTest, AnInstallThatFailsAfterItsOkIsReportedByFolderFlush) {
  ASSERT_NO_FATAL_FAILURE(InstallFirst(Connect()));
  ASSERT_TRUE(EndSession().ok());
  auto recs = TwoMessages();
  recs.push_back({3, "From: c\r\n\r\nthird message\r\n"});
  TestFolder update = MakeFolder(kKey, kDir, recs, "bob", 2);
  Peer& p = Connect();
  env.refuse = true;
  SendFolderBegin(p, update);
  auto need = RecvNeed(p);
  ASSERT_TRUE(need.ok()) << need.status().ToString();
  SendMessage(p, 3, recs[2].body);
  p.Send(protocol::kFolderCommit, "");
  ASSERT_TRUE(p.RecvOk().ok());
  p.Send(protocol::kFolderFlush, "");
  auto f = p.RecvExpect(protocol::kFolderFlushResult);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  auto res = protocol::DecodeFolderFlushResult(f->payload);
  ASSERT_TRUE(res.ok());
  ASSERT_EQ(res->failed.size(), 1u);
  EXPECT_EQ(res->failed[0].intname, update.fb.intname);
  EXPECT_NE(res->failed[0].error.find("rename refused"), std::string::npos) << res->failed[0].error;
  EXPECT_TRUE(Flush(p).ok());  // reported once
  EXPECT_EQ(ReadFile(Spool(kDir + "/cyrus.index")), first_.bodies[1]);
  auto rows = store_->manifest().FolderEntries(kKey);
  ASSERT_TRUE(rows.ok());
  for (const auto& e : *rows) {
    if (Basename(e.entry.path.rel) == "cyrus.index") {
      EXPECT_NE(e.entry.source.size, update.fb.files.back().source.size);  // still the first copy's
    }
  }
  EXPECT_TRUE(EndSession().ok());
  env.refuse = false;
  std::vector<NeedItem> again;
  Status st = InstallFolder(Connect(), update, recs, &again);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ReadFile(Spool(kDir + "/3.")), recs[2].body);
  EXPECT_EQ(ReadFile(Spool(kDir + "/cyrus.index")), update.bodies[1]);
}

// One file of a folder changed behind the replica's back: its entry is dropped at once, the
// folder's other entries by the next manifest, so the syncer copies the whole folder again.
TEST_F(ReplicaFolderTest, ManifestDropsTheWholeFolderWhenOneOfItsFilesChanged) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  {
    std::ofstream f(Spool(kDir + "/cyrus.header"), std::ios::app | std::ios::binary);
    f << "damage";
  }
  auto first = GetManifest(p);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(FindEntry(*first, first_.fb.files[0].path), nullptr);
  auto second = GetManifest(p);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE(second->empty()) << second->size() << " entries left";
  auto entries = store_->manifest().FolderEntries(kKey);
  ASSERT_TRUE(entries.ok());
  EXPECT_TRUE(entries->empty());
  // The folder is still known by its directory (a later exchange replaces it in place).
  auto row = store_->manifest().GetFolder(kKey);
  ASSERT_TRUE(row.ok());
  EXPECT_TRUE(row->has_value());
}

// The manifest check with the change watch: an unchanged replica is checked without a stat,
// and a file changed behind the daemon's back (in place, same size) is still caught, by
// statting only its own directory. Without the watch every check stats every entry.
class ReplicaWatchTest : public ReplicaFolderTest {
 protected:
  void SetUp() override {
    env_ = &env;  // members outlive TearDown's store_.reset()
    ReplicaFolderTest::SetUp();
  }
  size_t Walks() const { return env.Count("walk") + env.Count("stat"); }
  cyrsync::testing::CountingEnv env{Env::Default()};
};

TEST_F(ReplicaWatchTest, AQuietReplicaIsCheckedWithoutStatsAndAChangeIsStillSeen) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  ASSERT_TRUE(GetManifest(p).ok());  // statted and watched
  env.Clear();
  auto quiet = GetManifest(p);
  ASSERT_TRUE(quiet.ok()) << quiet.status().ToString();
  EXPECT_EQ(quiet->size(), 2u);
  EXPECT_EQ(Walks(), 0u);
  {
    std::fstream f(Spool(kDir + "/cyrus.header"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f << 'X';
  }
  env.Clear();
  auto changed = GetManifest(p);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_EQ(FindEntry(*changed, first_.fb.files[0].path), nullptr);
  EXPECT_EQ(env.Count("walk"), 1u);
  auto after = GetManifest(p);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->empty());  // the whole folder goes
}

TEST_F(ReplicaWatchTest, WithoutTheWatchEveryCheckStats) {
  ASSERT_TRUE(EndSession().ok());
  opts_.watch_changes = false;
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(store_->change_watch(), nullptr);
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  ASSERT_TRUE(GetManifest(p).ok());
  env.Clear();
  auto again = GetManifest(p);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->size(), 2u);
  EXPECT_EQ(env.Count("walk"), 1u);
}

TEST_F(ReplicaFolderTest, ManifestListsFolderMetadata) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  auto m = GetManifest(p);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->size(), 2u);  // message files are not manifest entries
  const auto* hdr = FindEntry(*m, first_.fb.files[0].path);
  const auto* idx = FindEntry(*m, first_.fb.files[1].path);
  ASSERT_NE(hdr, nullptr);
  ASSERT_NE(idx, nullptr);
  for (const auto* e : {hdr, idx}) {
    EXPECT_EQ(e->folder_key, kKey);
    EXPECT_EQ(e->owner, "bob");
    EXPECT_EQ(e->kind, protocol::EntryKind::kMeta);
    EXPECT_FALSE(e->unsettled);
  }
  EXPECT_EQ(hdr->source, first_.fb.files[0].source);
  EXPECT_EQ(idx->source, first_.fb.files[1].source);
  EXPECT_EQ(hdr->index_minor, 0u);
  EXPECT_EQ(idx->index_minor, 17u);
}

TEST_F(ReplicaFolderTest, UpdateAsksOnlyForNewMessageAndRemovesUnlinkedOne) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  struct stat two_before = LStat(Spool(kDir + "/2."));

  auto recs = TwoMessages();
  recs[0].system_flags = cyrus::kFlagExpunged | cyrus::kFlagUnlinked;
  recs.push_back({3, "From: c\r\n\r\nthird message\r\n"});
  TestFolder f = MakeFolder(kKey, kDir, recs, "bob", 2);
  std::vector<NeedItem> need;
  Status st = InstallFolder(p, f, recs, &need);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(NeedUids(need), (std::vector<uint32_t>{3}));

  EXPECT_FALSE(Exists(Spool(kDir + "/1."))) << "unlinked message file kept";
  struct stat two_after = LStat(Spool(kDir + "/2."));
  EXPECT_EQ(two_after.st_ino, two_before.st_ino) << "2. was rewritten";
  EXPECT_EQ(two_after.st_mtim.tv_nsec, two_before.st_mtim.tv_nsec);
  EXPECT_EQ(ReadFile(Spool(kDir + "/2.")), recs[1].body);
  EXPECT_EQ(ReadFile(Spool(kDir + "/3.")), recs[2].body);
  EXPECT_EQ(ReadFile(Spool(kDir + "/cyrus.index")), f.bodies[1]);
}

TEST_F(ReplicaFolderTest, UpdateAsksOnlyForNewMessageAndRemovesDroppedOne) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  struct stat two_before = LStat(Spool(kDir + "/2."));

  std::vector<TestRecord> recs = {TwoMessages()[1], {3, "third"}};
  TestFolder f = MakeFolder(kKey, kDir, recs, "bob", 2);
  std::vector<NeedItem> need;
  Status st = InstallFolder(p, f, recs, &need);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(NeedUids(need), (std::vector<uint32_t>{3}));
  EXPECT_FALSE(Exists(Spool(kDir + "/1.")));
  EXPECT_EQ(LStat(Spool(kDir + "/2.")).st_ino, two_before.st_ino);
  EXPECT_EQ(ReadFile(Spool(kDir + "/3.")), "third");
}

TEST_F(ReplicaFolderTest, FolderDeleteRemovesFolderFilesAndEntries) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  // Something else in the partition must survive.
  WriteFile(Spool("user/carol/1."), "carol's");
  p.Send(protocol::kFolderDelete, protocol::Encode(protocol::FolderDelete{kKey, false}));
  Status st = p.RecvOk();
  ASSERT_TRUE(st.ok()) << st.ToString();
  for (const char* n : {"1.", "2.", "cyrus.header", "cyrus.index"}) {
    EXPECT_FALSE(Exists(Spool(kDir + "/" + n))) << n;
  }
  EXPECT_FALSE(Exists(Spool(kDir))) << "empty folder directory kept";
  EXPECT_EQ(ReadFile(Spool("user/carol/1.")), "carol's");
  auto m = GetManifest(p);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->empty());
  auto row = store_->manifest().GetFolder(kKey);
  ASSERT_TRUE(row.ok());
  EXPECT_FALSE(row->has_value());
  // Deleting an unknown folder is a no-op.
  p.Send(protocol::kFolderDelete, protocol::Encode(protocol::FolderDelete{"no-such", false}));
  EXPECT_TRUE(p.RecvOk().ok());
  EXPECT_TRUE(EndSession().ok());
}

TEST_F(ReplicaFolderTest, FullCompareReRequestsMessageMissingOnDisk) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  fs::remove(Spool(kDir + "/2."));
  TestFolder f = MakeFolder(kKey, kDir, TwoMessages());
  f.fb.full = true;
  std::vector<NeedItem> need;
  Status st = InstallFolder(p, f, TwoMessages(), &need);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(NeedUids(need), (std::vector<uint32_t>{2}));
  EXPECT_EQ(ReadFile(Spool(kDir + "/2.")), TwoMessages()[1].body);
}

TEST_F(ReplicaFolderTest, IndexChangedOnDiskIsNotTrusted) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  fs::remove(Spool(kDir + "/1."));
  {
    std::ofstream f(Spool(kDir + "/cyrus.index"), std::ios::app | std::ios::binary);
    f << "x";  // no longer what was installed
  }
  TestFolder f = MakeFolder(kKey, kDir, TwoMessages());
  std::vector<NeedItem> need;
  Status st = InstallFolder(p, f, TwoMessages(), &need);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(NeedUids(need), (std::vector<uint32_t>{1}));
}

TEST_F(ReplicaFolderTest, CheckOnlyBeginAgainstInstalledIndex) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  Snapshot before = Snap();
  TestFolder f = MakeFolder(kKey, kDir, TwoMessages());
  f.fb.files.clear();
  f.bodies.clear();
  SendFolderBegin(p, f);
  auto need = RecvNeed(p);
  ASSERT_TRUE(need.ok()) << need.status().ToString();
  EXPECT_TRUE(need->empty());
  ASSERT_TRUE(Commit(p).ok());
  EXPECT_EQ(DiffSnapshots(before, Snap()), "");
}

TEST_F(ReplicaFolderTest, ArchivedMessagesGoToArchivePartition) {
  Peer& p = Connect();
  std::vector<TestRecord> recs = {{1, "old archived one", cyrus::kFlagArchived}, {2, "fresh two"}};
  TestFolder f = MakeFolder(kKey, kDir, recs);
  f.fb.archive_dir = {"archivepartition-default", kDir};
  SendFolderBegin(p, f);
  auto need = RecvNeed(p);
  ASSERT_TRUE(need.ok()) << need.status().ToString();
  ASSERT_EQ(need->size(), 2u);
  std::map<uint32_t, bool> got;
  for (const auto& n : *need) got[n.uid] = n.archived;
  EXPECT_EQ(got, (std::map<uint32_t, bool>{{1, true}, {2, false}}));
  SendMessage(p, 1, recs[0].body, true);
  SendMessage(p, 2, recs[1].body, false);
  ASSERT_TRUE(Commit(p).ok());
  EXPECT_EQ(ReadFile(Archive(kDir + "/1.")), recs[0].body);
  EXPECT_FALSE(Exists(Spool(kDir + "/1.")));
  EXPECT_EQ(ReadFile(Spool(kDir + "/2.")), recs[1].body);
  EXPECT_FALSE(Exists(Archive(kDir + "/2.")));

  // Archiving uid 2 on the source: the replica asks for the archived copy and drops the other.
  recs[1].system_flags = cyrus::kFlagArchived;
  TestFolder g = MakeFolder(kKey, kDir, recs, "bob", 2);
  g.fb.archive_dir = f.fb.archive_dir;
  std::vector<NeedItem> need2;
  Status st = InstallFolder(p, g, recs, &need2);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(need2.size(), 1u);
  EXPECT_EQ(need2[0].uid, 2u);
  EXPECT_TRUE(need2[0].archived);
  EXPECT_EQ(ReadFile(Archive(kDir + "/2.")), recs[1].body);
  EXPECT_FALSE(Exists(Spool(kDir + "/2."))) << "unarchived copy kept";
}

// Metadata sent again with the bytes the replica already holds (a file re-sent because it was
// unsettled) keeps the installed copy and its inode; the same size with other bytes replaces it.
TEST_F(ReplicaFolderTest, ResentMetadataIsKeptOnlyWhenItsBytesAreTheSame) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  const ino_t header_ino = LStat(Spool(kDir + "/cyrus.header")).st_ino;
  ASSERT_TRUE(InstallFolder(p, first_, TwoMessages()).ok());
  EXPECT_EQ(LStat(Spool(kDir + "/cyrus.header")).st_ino, header_ino);
  TestFolder changed = first_;
  ASSERT_FALSE(changed.bodies[0].empty());
  changed.bodies[0].back() ^= 0x20;  // same size, other bytes
  ASSERT_TRUE(InstallFolder(p, changed, TwoMessages()).ok());
  EXPECT_NE(LStat(Spool(kDir + "/cyrus.header")).st_ino, header_ino);
  EXPECT_EQ(ReadFile(Spool(kDir + "/cyrus.header")), changed.bodies[0]);
}

TEST_F(ReplicaFolderTest, MessageMissingMarksMetadataUnsettled) {
  Peer& p = Connect();
  TestFolder f = MakeFolder(kKey, kDir, TwoMessages());
  SendFolderBegin(p, f);
  auto need = RecvNeed(p);
  ASSERT_TRUE(need.ok()) << need.status().ToString();
  ASSERT_EQ(NeedUids(*need), (std::vector<uint32_t>{1, 2}));
  SendMessage(p, 1, TwoMessages()[0].body);
  p.Send(protocol::kMessageMissing, protocol::EncodeU32(2));
  ASSERT_TRUE(Commit(p).ok());
  EXPECT_TRUE(Exists(Spool(kDir + "/1.")));
  EXPECT_FALSE(Exists(Spool(kDir + "/2.")));
  auto m = GetManifest(p);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->size(), 2u);
  for (const auto& e : *m) EXPECT_TRUE(e.unsettled) << e.path.rel;
}

// --full's batched check: a folder whose installed index names a file the directory lost, a
// folder the replica never installed, and an intact one; only the first two need an exchange,
// and the check changes nothing but stale hidden temp files of another process.
TEST_F(ReplicaFolderTest, FolderCheckReportsOnlyIncompleteFolders) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  TestFolder other = MakeFolder("uuid-carol", "user/carol", {{1, "carol one"}}, "carol");
  ASSERT_TRUE(InstallFolder(p, other, {{1, "carol one"}}).ok());
  WriteFile(Spool("user/carol/.cyrsync-1-3"), "left by a dead process");
  WriteFile(Spool("user/carol/.cyrsync-keep"), "not a temp file name of ours");
  auto check = [&](std::vector<protocol::CheckedFolder> folders) {
    p.Send(protocol::kFolderCheck, protocol::Encode(protocol::FolderCheck{std::move(folders)}));
    auto f = p.RecvExpect(protocol::kFolderCheckResult);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    auto r = protocol::DecodeFolderCheckResult(f.ok() ? f->payload : "");
    return r.ok() ? r->needs_exchange : std::vector<std::string>{"<undecodable>"};
  };
  const protocol::CheckedFolder bob{kKey, first_.fb.data_dir, first_.fb.archive_dir};
  const protocol::CheckedFolder carol{"uuid-carol", other.fb.data_dir, other.fb.archive_dir};
  const protocol::CheckedFolder never{"uuid-never", {"partition-default", "user/dave"},
                                     {"partition-default", "user/dave"}};
  EXPECT_EQ(check({bob, carol, never}), (std::vector<std::string>{"uuid-never"}));
  EXPECT_FALSE(Exists(Spool("user/carol/.cyrsync-1-3")));
  EXPECT_TRUE(Exists(Spool("user/carol/.cyrsync-keep")));
  fs::remove(Spool(kDir + "/2."));
  const Snapshot before = Snap();
  EXPECT_EQ(check({bob, carol}), (std::vector<std::string>{kKey}));
  EXPECT_EQ(DiffSnapshots(before, Snap()), "");
  // The session goes on: the folder is repaired by a check-only exchange.
  protocol::FolderBegin fb = first_.fb;
  fb.full = true;
  fb.files.clear();
  p.Send(protocol::kFolderBegin, protocol::Encode(fb));
  auto need = RecvNeed(p);
  ASSERT_TRUE(need.ok()) << need.status().ToString();
  EXPECT_EQ(NeedUids(*need), (std::vector<uint32_t>{2}));
  SendMessage(p, 2, TwoMessages()[1].body);
  ASSERT_TRUE(Commit(p).ok());
  EXPECT_EQ(ReadFile(Spool(kDir + "/2.")), TwoMessages()[1].body);
  EXPECT_EQ(check({bob, carol}), std::vector<std::string>{});
  EXPECT_TRUE(EndSession().ok());
}

// The check compares a folder's listing with the message digest recorded at its install; only
// when they differ (or the digest is unknown, in a folder recorded before schema version 3) is
// the installed index read, and that index decides.
TEST_F(ReplicaFolderTest, FolderCheckReadsTheIndexOnlyWhenTheListingDiffers) {
  Peer& p = Connect();
  ASSERT_NO_FATAL_FAILURE(InstallFirst(p));
  auto check = [&](const protocol::CheckedFolder& c) {
    p.Send(protocol::kFolderCheck, protocol::Encode(protocol::FolderCheck{{c}}));
    auto f = p.RecvExpect(protocol::kFolderCheckResult);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    auto r = protocol::DecodeFolderCheckResult(f.ok() ? f->payload : "");
    return r.ok() ? r->needs_exchange : std::vector<std::string>{"<undecodable>"};
  };
  auto set_digest = [&](MessageDigest d) {
    auto row = store_->manifest().GetFolder(kKey);
    ASSERT_TRUE(row.ok() && row->has_value());
    (*row)->messages = d;
    ASSERT_TRUE(store_->manifest().Apply({}, {}, **row).ok());
  };
  const protocol::CheckedFolder bob{kKey, first_.fb.data_dir, first_.fb.archive_dir};
  const std::vector<std::string> whole, incomplete{kKey};
  MessageDigest both = MessageDigest::Empty();  // what the install recorded: uids 1 and 2
  both.Add(1, false);
  both.Add(2, false);
  auto installed = store_->manifest().GetFolder(kKey);
  ASSERT_TRUE(installed.ok() && installed->has_value());
  EXPECT_EQ((*installed)->messages, both);
  // A message file the index does not name: the digest differs, the index says whole.
  WriteFile(Spool(kDir + "/9."), "not named by the index");
  EXPECT_EQ(check(bob), whole);
  fs::remove(Spool(kDir + "/9."));
  // An unknown digest: the index decides, and its set becomes the digest.
  ASSERT_NO_FATAL_FAILURE(set_digest(MessageDigest{}));
  fs::remove(Spool(kDir + "/2."));
  EXPECT_EQ(check(bob), incomplete);
  auto filled = store_->manifest().GetFolder(kKey);
  ASSERT_TRUE(filled.ok() && filled->has_value());
  EXPECT_EQ((*filled)->messages, both);
  ASSERT_NO_FATAL_FAILURE(set_digest(MessageDigest{}));
  WriteFile(Spool(kDir + "/2."), TwoMessages()[1].body);
  EXPECT_EQ(check(bob), whole);
  // A digest equal to the listing's: whole, without a look at the index, even a lost one.
  ASSERT_NO_FATAL_FAILURE(set_digest(both));
  fs::remove(Spool(kDir + "/cyrus.index"));
  EXPECT_EQ(check(bob), whole);
  fs::remove(Spool(kDir + "/2."));
  EXPECT_EQ(check(bob), incomplete);
  EXPECT_TRUE(EndSession().ok());
}

}  // namespace
}  // namespace cyrsync::replica
