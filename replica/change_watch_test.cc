// ChangeWatch against a real directory tree: every way a checked file can change, or a checked
// directory can stop being the one at its path, must end its quiet state.
#include "replica/change_watch.h"

#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tests/testutil/temp_dir.h"

namespace cyrsync::replica {
namespace {

namespace fs = std::filesystem;

class ChangeWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.Sub("root");
    fs::create_directories(root_ + "/a/b");
    Write("a/b/cyrus.index", "index v1");
    Write("a/b/cyrus.header", "header");
    auto w = ChangeWatch::Open(spdlog::default_logger_raw());
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    watch_ = std::move(*w);
    ASSERT_TRUE(watch_->Arm(root_, "a/b"));
  }
  void Write(const std::string& rel, const std::string& text, bool append = false) {
    std::ofstream f(root_ + "/" + rel, append ? std::ios::app : std::ios::trunc);
    f << text;
  }
  bool Quiet(const std::string& rel = "a/b") {
    watch_->Poll();
    return watch_->Quiet(root_ + "/" + rel);
  }

  cyrsync::testing::TempDir tmp_;
  std::string root_;
  std::unique_ptr<ChangeWatch> watch_;
};

TEST_F(ChangeWatchTest, QuietUntilAFileIsWrittenThenQuietAgainAfterArm) {
  EXPECT_TRUE(Quiet());
  EXPECT_TRUE(Quiet());
  EXPECT_EQ(watch_->watches(), 3u);  // root, a, a/b
  Write("a/b/cyrus.index", " more", true);
  EXPECT_FALSE(Quiet());
  ASSERT_TRUE(watch_->Arm(root_, "a/b"));
  EXPECT_TRUE(Quiet());
  EXPECT_EQ(watch_->watches(), 3u);  // re-arming adds no watch
}

TEST_F(ChangeWatchTest, NeverArmedOrVanishedIsNotQuiet) {
  EXPECT_FALSE(Quiet("a"));  // watched as an ancestor only
  EXPECT_FALSE(Quiet("a/b/c"));
  EXPECT_FALSE(watch_->Arm(root_, "a/missing"));
  EXPECT_FALSE(Quiet("a/missing"));
}

TEST_F(ChangeWatchTest, AttributesRenamesAndUnlinksAreChanges) {
  ASSERT_EQ(::chmod((root_ + "/a/b/cyrus.index").c_str(), 0600), 0);
  EXPECT_FALSE(Quiet());
  ASSERT_TRUE(watch_->Arm(root_, "a/b"));
  Write("other", "new index");
  fs::rename(root_ + "/other", root_ + "/a/b/cyrus.index");  // moved in over the checked file
  EXPECT_FALSE(Quiet());
  ASSERT_TRUE(watch_->Arm(root_, "a/b"));
  fs::remove(root_ + "/a/b/cyrus.header");
  EXPECT_FALSE(Quiet());
  ASSERT_TRUE(watch_->Arm(root_, "a/b"));
  // A timestamp set back to what it was is still an event.
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/a/b/cyrus.index").c_str(), &st), 0);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, (root_ + "/a/b/cyrus.index").c_str(), times, 0), 0);
  EXPECT_FALSE(Quiet());
}

TEST_F(ChangeWatchTest, AnAncestorReplacedEndsQuietBelowIt) {
  // The tree moved aside and a copy put in its place: the copy sends no event of its own.
  fs::rename(root_ + "/a", root_ + "/a.old");
  fs::create_directories(root_ + "/a/b");
  fs::copy(root_ + "/a.old/b", root_ + "/a/b");
  EXPECT_FALSE(Quiet());
  EXPECT_EQ(watch_->WatchOfForTest(root_ + "/a"), -1);
  ASSERT_TRUE(watch_->Arm(root_, "a/b"));  // now the new directories
  EXPECT_TRUE(Quiet());
  Write("a.old/b/cyrus.index", "the old copy changes");  // no longer what is checked
  EXPECT_TRUE(Quiet());
}

TEST_F(ChangeWatchTest, ARootReplacedEndsQuietBelowIt) {
  // Above the root nothing is watched: the root's identity is checked at each Poll.
  fs::rename(root_, root_ + ".old");
  fs::create_directories(root_ + "/a/b");
  EXPECT_FALSE(Quiet());
  ASSERT_TRUE(watch_->Arm(root_, "a/b"));
  EXPECT_TRUE(Quiet());
}

TEST_F(ChangeWatchTest, ASiblingWithALongerNameKeepsItsWatch) {
  // "b.old" sorts between "b" and "b/...": forgetting b must not take it along.
  fs::create_directories(root_ + "/a/b.old");
  fs::create_directories(root_ + "/a/b/c");
  watch_->Poll();
  ASSERT_TRUE(watch_->Arm(root_, "a/b.old"));
  ASSERT_TRUE(watch_->Arm(root_, "a/b/c"));
  fs::rename(root_ + "/a/b", root_ + "/a/gone");
  EXPECT_FALSE(Quiet("a/b/c"));
  EXPECT_TRUE(Quiet("a/b.old"));
  EXPECT_GE(watch_->WatchOfForTest(root_ + "/a/b.old"), 0);
}

TEST_F(ChangeWatchTest, ADirectoryDeletedAndMadeAgainIsNotQuiet) {
  fs::remove_all(root_ + "/a/b");
  fs::create_directories(root_ + "/a/b");
  EXPECT_FALSE(Quiet());
  EXPECT_EQ(watch_->WatchOfForTest(root_ + "/a/b"), -1);
}

TEST_F(ChangeWatchTest, AMovedDirectoryIsWatchedUnderItsNewPathOnly) {
  const int wd = watch_->WatchOfForTest(root_ + "/a/b");
  ASSERT_GE(wd, 0);
  fs::rename(root_ + "/a/b", root_ + "/a/c");
  EXPECT_FALSE(Quiet());
  ASSERT_TRUE(watch_->Arm(root_, "a/c"));
  EXPECT_TRUE(Quiet("a/c"));
  EXPECT_FALSE(Quiet("a/b"));
  Write("a/c/cyrus.index", "changed", true);
  EXPECT_FALSE(Quiet("a/c"));
}

TEST_F(ChangeWatchTest, ALostEventQueueEndsEveryQuietButKeepsTheWatches) {
  fs::create_directories(root_ + "/x");
  watch_->Poll();  // the creation's own event, which would drop x's watch below
  ASSERT_TRUE(watch_->Arm(root_, "x"));
  watch_->ApplyForTest(-1, IN_Q_OVERFLOW, "");
  EXPECT_FALSE(Quiet());
  EXPECT_FALSE(Quiet("x"));
  EXPECT_EQ(watch_->watches(), 4u);
  ASSERT_TRUE(watch_->Arm(root_, "x"));
  EXPECT_TRUE(Quiet("x"));
  EXPECT_EQ(watch_->watches(), 4u);
}

TEST_F(ChangeWatchTest, FilesInOtherDirectoriesDoNotMatter) {
  fs::create_directories(root_ + "/a/d");
  Write("a/d/cyrus.index", "another folder");  // a sibling: an event in "a" only
  Write("a/seen", "x");
  EXPECT_TRUE(Quiet());
}

}  // namespace
}  // namespace cyrsync::replica
