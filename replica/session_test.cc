// ServeSession happy paths over an in-process pipe: HELLO, FILE_PUT / FILE_REMOVE, symlinks,
// GET_MANIFEST (and its dropping of stale entries), and the refusal to write while the replica's
// own Cyrus runs.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "replica/session_test_util.h"

namespace cyrsync::replica {
namespace {

using namespace ::cyrsync::replica::test;  // NOLINT(google-build-using-namespace)

const StatTuple kSrc{8, 1700000000123456789, 1700000000223456789, 4242};

class ReplicaSessionTest : public ReplicaFixture {};

TEST_F(ReplicaSessionTest, CleanCloseByPeerEndsSessionOk) {
  Peer& p = Connect();
  (void)p;
  EXPECT_TRUE(EndSession().ok());
}

TEST_F(ReplicaSessionTest, HelloInstanceIdIsStableAcrossStoreReopen) {
  Peer& p = StartSession();
  auto first = DoHello(p);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->version, protocol::kProtocolVersion);
  EXPECT_FALSE(first->cyrus_running);
  ASSERT_EQ(first->instance_id.size(), 32u);
  EXPECT_EQ(first->instance_id.find_first_not_of("0123456789abcdef"), std::string::npos)
      << first->instance_id;
  EXPECT_EQ(first->instance_id, store_->instance_id());
  ASSERT_TRUE(EndSession().ok());

  ASSERT_NO_FATAL_FAILURE(OpenStore());
  Peer& p2 = StartSession();
  auto second = DoHello(p2);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->instance_id, first->instance_id);
}

TEST_F(ReplicaSessionTest, HelloInstanceIdChangesWhenStateDirIsWiped) {
  std::string first = store_->instance_id();
  store_.reset();
  fs::remove_all(opts_.state_dir);
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  Peer& p = StartSession();
  auto hello = DoHello(p);
  ASSERT_TRUE(hello.ok()) << hello.status().ToString();
  EXPECT_EQ(hello->instance_id.size(), 32u);
  EXPECT_NE(hello->instance_id, first);
}

TEST_F(ReplicaSessionTest, HelloWithOtherVersionIsRefused) {
  Peer& p = StartSession();
  protocol::Hello h;
  h.version = protocol::kProtocolVersion - 1;  // an older client
  p.Send(protocol::kHello, protocol::Encode(h));
  auto f = p.Recv();
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_EQ(f->type, protocol::kError);
  EXPECT_EQ(protocol::StatusFromError(f->payload).code(), Code::kFailedPrecondition);
  EXPECT_FALSE(EndSession().ok());
}

TEST_F(ReplicaSessionTest, FilePutThenManifestListsItWithSourceStat) {
  Peer& p = Connect();
  const WirePath path{"configdirectory", "mailboxes.db"};
  ASSERT_TRUE(PutFile(p, path, "db-bytes", kSrc).ok());
  EXPECT_EQ(ReadFile(Conf("mailboxes.db")), "db-bytes");
  // The installed copy carries the source's mtime.
  struct stat st = LStat(Conf("mailboxes.db"));
  EXPECT_EQ(int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec, kSrc.mtime_ns);

  auto m = GetManifest(p);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->size(), 1u);
  const auto& e = (*m)[0];
  EXPECT_EQ(e.path, path);
  EXPECT_EQ(e.owner, "");
  EXPECT_EQ(e.folder_key, "");
  EXPECT_EQ(e.kind, protocol::EntryKind::kFile);
  EXPECT_EQ(e.source, kSrc);
  EXPECT_FALSE(e.unsettled);
  EXPECT_EQ(e.index_minor, 0u);
  EXPECT_TRUE(EndSession().ok());
}

TEST_F(ReplicaSessionTest, FilePutCreatesMissingParentDirectories) {
  Peer& p = Connect();
  const WirePath path{"configdirectory", "user/b/bob.seen"};
  StatTuple src{3, 1700000001000000000, 1700000001000000000, 7};
  ASSERT_TRUE(PutFile(p, path, "abc", src, "bob").ok());
  EXPECT_EQ(ReadFile(Conf("user/b/bob.seen")), "abc");
  auto m = GetManifest(p);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const auto* e = FindEntry(*m, path);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->owner, "bob");
  EXPECT_EQ(e->source, src);
}

TEST_F(ReplicaSessionTest, ManifestOwnerFilter) {
  Peer& p = Connect();
  ASSERT_TRUE(PutFile(p, {"configdirectory", "mailboxes.db"}, "db", kSrc).ok());
  ASSERT_TRUE(PutFile(p, {"configdirectory", "user/b/bob.seen"}, "s1", kSrc, "bob").ok());
  ASSERT_TRUE(PutFile(p, {"configdirectory", "user/c/carol.seen"}, "s2", kSrc, "carol").ok());
  auto all = GetManifest(p);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->size(), 3u);
  auto bob = GetManifest(p, "bob");
  ASSERT_TRUE(bob.ok()) << bob.status().ToString();
  ASSERT_EQ(bob->size(), 1u);
  EXPECT_EQ((*bob)[0].path.rel, "user/b/bob.seen");
}

TEST_F(ReplicaSessionTest, ManifestDropsEntryWhoseInstalledCopyChanged) {
  Peer& p = Connect();
  const WirePath db{"configdirectory", "mailboxes.db"};
  const WirePath seen{"configdirectory", "user/b/bob.seen"};
  ASSERT_TRUE(PutFile(p, db, "db-bytes", kSrc).ok());
  ASSERT_TRUE(PutFile(p, seen, "seen", kSrc, "bob").ok());
  auto before = GetManifest(p);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  ASSERT_EQ(before->size(), 2u);

  // Modified behind the replica's back (e.g. restored from a backup).
  {
    std::ofstream f(Conf("mailboxes.db"), std::ios::app | std::ios::binary);
    f << "local change";
  }
  auto after = GetManifest(p);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(FindEntry(*after, db), nullptr) << "stale entry still listed";
  EXPECT_NE(FindEntry(*after, seen), nullptr);
  // Dropped for good: the manifest row is gone, not just hidden once.
  auto again = GetManifest(p);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(FindEntry(*again, db), nullptr);
  auto row = store_->manifest().Get(db);
  ASSERT_TRUE(row.ok());
  EXPECT_FALSE(row->has_value());
}

TEST_F(ReplicaSessionTest, ManifestDropsEntryWhoseInstalledCopyWasDeletedOrReplaced) {
  Peer& p = Connect();
  const WirePath a{"configdirectory", "a.db"};
  const WirePath b{"configdirectory", "b.db"};
  ASSERT_TRUE(PutFile(p, a, "aaaa", kSrc).ok());
  ASSERT_TRUE(PutFile(p, b, "bbbb", kSrc).ok());
  fs::remove(Conf("a.db"));
  // Same size and content, new inode.
  WriteFile(Conf("b.db.new"), "bbbb");
  fs::rename(Conf("b.db.new"), Conf("b.db"));
  auto m = GetManifest(p);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->empty()) << m->size() << " entries still listed";
}

TEST_F(ReplicaSessionTest, FilePutReplacesExistingFile) {
  Peer& p = Connect();
  const WirePath path{"configdirectory", "mailboxes.db"};
  ASSERT_TRUE(PutFile(p, path, "version-1", kSrc).ok());
  StatTuple src2{9, kSrc.mtime_ns + 5, kSrc.ctime_ns + 5, kSrc.ino};
  ASSERT_TRUE(PutFile(p, path, "version-2!", src2).ok());
  EXPECT_EQ(ReadFile(Conf("mailboxes.db")), "version-2!");
  auto m = GetManifest(p);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ((*m)[0].source, src2);
}

TEST_F(ReplicaSessionTest, FileRemoveRemovesFileAndEntry) {
  Peer& p = Connect();
  const WirePath path{"configdirectory", "user/b/bob.seen"};
  ASSERT_TRUE(PutFile(p, path, "seen", kSrc, "bob").ok());
  ASSERT_TRUE(Exists(Conf("user/b/bob.seen")));
  ASSERT_TRUE(RemoveFile(p, path).ok());
  EXPECT_FALSE(Exists(Conf("user/b/bob.seen")));
  auto m = GetManifest(p);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->empty());
  // Removing what is already gone is fine (idempotent).
  EXPECT_TRUE(RemoveFile(p, path).ok());
  EXPECT_TRUE(EndSession().ok());
}

TEST_F(ReplicaSessionTest, SymlinkPutAndReplace) {
  Peer& p = Connect();
  const WirePath bc{"sievedir", "b/bob/main.bc"};
  const WirePath link{"sievedir", "b/bob/defaultbc"};
  ASSERT_TRUE(PutFile(p, bc, "bytecode", kSrc, "bob").ok());
  StatTuple lsrc{7, kSrc.mtime_ns, kSrc.ctime_ns, 99};
  Status st = PutSymlink(p, link, "main.bc", lsrc, "bob");
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(fs::is_symlink(Sieve("b/bob/defaultbc")));
  EXPECT_EQ(fs::read_symlink(Sieve("b/bob/defaultbc")).string(), "main.bc");
  EXPECT_EQ(ReadFile(Sieve("b/bob/defaultbc")), "bytecode");  // resolves to the sibling

  auto m = GetManifest(p, "bob");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const auto* e = FindEntry(*m, link);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->kind, protocol::EntryKind::kSymlink);
  EXPECT_EQ(e->source, lsrc);

  StatTuple lsrc2{8, kSrc.mtime_ns + 1, kSrc.ctime_ns + 1, 100};
  st = PutSymlink(p, link, "other.bc", lsrc2, "bob");
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(fs::read_symlink(Sieve("b/bob/defaultbc")).string(), "other.bc");
  m = GetManifest(p, "bob");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  e = FindEntry(*m, link);
  ASSERT_NE(e, nullptr) << "replaced symlink must still be trusted";
  EXPECT_EQ(e->source, lsrc2);
  EXPECT_TRUE(EndSession().ok());
}

TEST_F(ReplicaSessionTest, SymlinkReplacedByFileAndBack) {
  Peer& p = Connect();
  const WirePath link{"sievedir", "b/bob/defaultbc"};
  ASSERT_TRUE(PutSymlink(p, link, "main.bc", kSrc, "bob").ok());
  ASSERT_TRUE(PutFile(p, link, "now a file", kSrc, "bob").ok());
  EXPECT_FALSE(fs::is_symlink(Sieve("b/bob/defaultbc")));
  EXPECT_EQ(ReadFile(Sieve("b/bob/defaultbc")), "now a file");
  ASSERT_TRUE(PutSymlink(p, link, "main.bc", kSrc, "bob").ok());
  EXPECT_TRUE(fs::is_symlink(Sieve("b/bob/defaultbc")));
}

// ---------------------------------------------------------------------------------------------
// The daemon refuses writes while the replica's own Cyrus runs.

class ReplicaCyrusRunningTest : public ReplicaFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ReplicaFixture::SetUp());
    pidfile_ = tmp_.Sub("run/cyrus-master.pid");
    fs::create_directories(tmp_.Sub("run"));
    opts_.cyrus_pidfile = pidfile_;
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }
  std::string pidfile_;
};

TEST_F(ReplicaCyrusRunningTest, HelloRefusedWhilePidfileNamesLiveProcess) {
  WriteFile(pidfile_, std::to_string(::getpid()) + "\n");
  EXPECT_TRUE(store_->CyrusRunning());
  Snapshot before = Snap();
  Peer& p = StartSession();
  auto hello = DoHello(p);
  ASSERT_FALSE(hello.ok());
  EXPECT_EQ(hello.status().code(), Code::kFailedPrecondition) << hello.status().ToString();
  // The session is over: the pipe is closed.
  auto next = p.Recv();
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.status().code(), Code::kUnavailable);
  EXPECT_EQ(EndSession().code(), Code::kFailedPrecondition);
  EXPECT_EQ(DiffSnapshots(before, Snap()), "");
}

TEST_F(ReplicaCyrusRunningTest, WritesRefusedWhenCyrusStartsMidSession) {
  Peer& p = Connect();  // no pid file yet
  ASSERT_TRUE(PutFile(p, {"configdirectory", "a.db"}, "aaaa", kSrc).ok());
  WriteFile(pidfile_, std::to_string(::getpid()));
  Snapshot before = Snap();
  Status st = PutFile(p, {"configdirectory", "a.db"}, "changed", kSrc);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition) << st.ToString();
  EXPECT_FALSE(EndSession().ok());
  EXPECT_EQ(DiffSnapshots(before, Snap()), "");
  EXPECT_EQ(ReadFile(Conf("a.db")), "aaaa");
}

TEST_F(ReplicaCyrusRunningTest, FileRemoveRefusedWhileCyrusRuns) {
  Peer& p = Connect();
  ASSERT_TRUE(PutFile(p, {"configdirectory", "a.db"}, "aaaa", kSrc).ok());
  WriteFile(pidfile_, std::to_string(::getpid()));
  Status st = RemoveFile(p, {"configdirectory", "a.db"});
  EXPECT_EQ(st.code(), Code::kFailedPrecondition) << st.ToString();
  EXPECT_TRUE(Exists(Conf("a.db")));
}

TEST_F(ReplicaCyrusRunningTest, StalePidfileDoesNotBlock) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  WriteFile(pidfile_, std::to_string(child) + "\n");
  EXPECT_FALSE(store_->CyrusRunning());
  Peer& p = StartSession();
  auto hello = DoHello(p);
  ASSERT_TRUE(hello.ok()) << hello.status().ToString();
  EXPECT_FALSE(hello->cyrus_running);
}

}  // namespace
}  // namespace cyrsync::replica
