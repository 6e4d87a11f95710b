// Store::InstalledPath / OpenInstalled: an installed file is read at the path its stat check
// used, and only while it is still exactly what was installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include "replica/session_test_util.h"

namespace cyrsync::replica {
namespace {

using namespace ::cyrsync::replica::test;  // NOLINT(google-build-using-namespace)

const StatTuple kSrc{8, 1700000000123456789, 1700000000223456789, 4242};

class StoreInstalledTest : public ReplicaFixture {
 protected:
  // The manifest entry of path, put there by a FILE_PUT of body.
  StoredEntry Install(const WirePath& path, std::string_view body) {
    Peer& p = Connect();
    EXPECT_TRUE(PutFile(p, path, body, kSrc).ok());
    EXPECT_TRUE(EndSession().ok());
    auto e = store_->manifest().Get(path);
    EXPECT_TRUE(e.ok() && *e);
    return e.ok() && *e ? **e : StoredEntry{};
  }
};

TEST_F(StoreInstalledTest, AnUntouchedFileIsReadAtItsPath) {
  const WirePath path{"configdirectory", "user/b/bob.seen"};
  StoredEntry e = Install(path, "seen-bytes");
  auto abs = store_->InstalledPath(e);
  ASSERT_TRUE(abs.has_value());
  EXPECT_EQ(*abs, Conf("user/b/bob.seen"));
  EXPECT_TRUE(store_->StillInstalled(e));

  auto basis = store_->OpenInstalled(path);
  ASSERT_NE(basis.file, nullptr);
  EXPECT_EQ(basis.size, 10u);
  auto bytes = basis.file->ReadAll();
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, "seen-bytes");
}

TEST_F(StoreInstalledTest, AFileChangedOrReplacedSinceIsNotReadAsInstalled) {
  const WirePath path{"configdirectory", "user/b/bob.seen"};
  StoredEntry e = Install(path, "seen-bytes");
  WriteFile(Conf("user/b/bob.seen"), "other-byte");  // same size, new mtime and ctime
  EXPECT_FALSE(store_->InstalledPath(e).has_value());
  EXPECT_FALSE(store_->StillInstalled(e));
  EXPECT_EQ(store_->OpenInstalled(path).file, nullptr);
}

TEST_F(StoreInstalledTest, ADirectoryReplacedByASymlinkIsNotFollowed) {
  const WirePath path{"configdirectory", "user/b/bob.seen"};
  StoredEntry e = Install(path, "seen-bytes");
  // The same file reached through a symlinked ancestor: its inode's ctime changed with the new
  // link, so the stat tuple no longer matches and nothing is read through the symlink.
  fs::create_directories(Outside("b"));
  ASSERT_EQ(::link(Conf("user/b/bob.seen").c_str(), Outside("b/bob.seen").c_str()), 0);
  fs::remove_all(Conf("user/b"));
  fs::create_directory_symlink(Outside("b"), Conf("user/b"));
  EXPECT_FALSE(store_->InstalledPath(e).has_value());
  EXPECT_EQ(store_->OpenInstalled(path).file, nullptr);
}

TEST_F(StoreInstalledTest, AnEntryWithABadPathHasNoInstalledPath) {
  StoredEntry e = Install({"configdirectory", "user/b/bob.seen"}, "seen-bytes");
  e.entry.path.rel = "../outside/b/bob.seen";
  EXPECT_FALSE(store_->InstalledPath(e).has_value());
  e.entry.path = {"no-such-root", "user/b/bob.seen"};
  EXPECT_FALSE(store_->InstalledPath(e).has_value());
}

}  // namespace
}  // namespace cyrsync::replica
