#include "syncer/spool.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/testutil/counting_env.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::syncer {
namespace {

class StatFoldersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto conf = cyrus::ParseImapdConf("configdirectory: " + dir_.Sub("conf") +
                                          "\npartition-default: " + dir_.Sub("spool") + "\n",
                                      "imapd.conf");
    ASSERT_TRUE(conf.ok()) << conf.error().ToString();
    conf_ = *conf;
  }
  // Creates spool/<meta_dir>/cyrus.index and cyrus.header.
  void MakeFolder(const std::string& meta_dir, bool header = true) {
    ASSERT_TRUE(MakeDirs(env_, dir_.Sub("spool/" + meta_dir), 0755).ok());
    ASSERT_TRUE(AtomicWriteFile(env_, dir_.Sub("spool/" + meta_dir + "/cyrus.index"), "i", {}).ok());
    if (!header) return;
    ASSERT_TRUE(
        AtomicWriteFile(env_, dir_.Sub("spool/" + meta_dir + "/cyrus.header"), "hh", {}).ok());
  }
  static SourceStats Paths(const std::string& index_rel, const std::string& header_rel) {
    SourceStats s;
    s.index_path = {"partition-default", index_rel};
    s.header_path = {"partition-default", header_rel};
    return s;
  }
  static SourceStats Folder(const std::string& meta_dir) {
    return Paths(meta_dir + "/cyrus.index", meta_dir + "/cyrus.header");
  }

  testing::TempDir dir_;
  Env* env_ = Env::Default();
  cyrus::ImapdConf conf_;
};

// Many folders at once give exactly what StatFolder gives each, and folders beside each other
// share one walk of their parent directory's path.
TEST_F(StatFoldersTest, MatchesStatFolderAndWalksEachParentOnce) {
  MakeFolder("uuid/a/b/f1");
  MakeFolder("uuid/a/b/f2");
  MakeFolder("uuid/c/d/f3", /*header=*/false);
  MakeFolder("top");  // no parent within the root: statted on its own
  std::vector<SourceStats> folders = {
      Folder("uuid/c/d/f3"), Folder("uuid/a/b/f1"), Folder("top"), Folder("uuid/a/b/gone"),
      Folder("uuid/a/b/f2"), Folder("uuid/x/y/gone"),
      // index and header in different directories (metapartition-files): on its own
      Paths("uuid/a/b/f1/cyrus.index", "uuid/a/b/f2/cyrus.header")};
  std::vector<SourceStats*> ptrs;
  for (auto& f : folders) ptrs.push_back(&f);
  testing::CountingEnv counting(env_);
  StatFolders(&counting, conf_, ptrs, 4);

  for (const auto& got : folders) {
    SourceStats want = StatFolder(env_, conf_, {got.index_path.root, got.index_path.rel},
                                  {got.header_path.root, got.header_path.rel});
    EXPECT_EQ(got.index, want.index) << got.index_path.rel;
    EXPECT_EQ(got.header, want.header) << got.header_path.rel;
  }
  EXPECT_TRUE(folders[1].index && folders[1].header);
  EXPECT_TRUE(folders[0].index && !folders[0].header);
  EXPECT_FALSE(folders[3].index || folders[3].header);
  EXPECT_TRUE(folders[6].index && folders[6].header);
  EXPECT_EQ(folders[6].header->size, 2u);

  std::multiset<std::string> walks;
  for (const auto& op : counting.ops()) {
    if (op.kind == "walk") walks.insert(op.path);
  }
  // uuid/a/b holds f1, f2 and gone; uuid/c/d and uuid/x/y one each; the rest walk per stat.
  EXPECT_EQ(walks, (std::multiset<std::string>{dir_.Sub("spool/uuid/a/b"),
                                               dir_.Sub("spool/uuid/c/d"),
                                               dir_.Sub("spool/uuid/x/y"),
                                               dir_.Sub("spool/top")}));
}

// Many folders in one directory (the INBOXes of a by-name spool without hashing) are split into
// several walks, so that they still spread over the threads.
TEST_F(StatFoldersTest, AFullDirectoryIsSplitIntoSeveralWalks) {
  std::vector<SourceStats> folders;
  for (int i = 0; i < 40; ++i) {
    const std::string dir = "user/u" + std::to_string(i);
    if (i % 3 == 0) MakeFolder(dir);
    folders.push_back(Folder(dir));
  }
  std::vector<SourceStats*> ptrs;
  for (auto& f : folders) ptrs.push_back(&f);
  testing::CountingEnv counting(env_);
  StatFolders(&counting, conf_, ptrs, 4);
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(folders[i].index.has_value(), i % 3 == 0) << i;
    EXPECT_EQ(folders[i].header.has_value(), i % 3 == 0) << i;
  }
  EXPECT_EQ(counting.Count("walk"), 3u);  // 16 + 16 + 8
  EXPECT_EQ(counting.Count("stat"), 80u);
}

}  // namespace
}  // namespace cyrsync::syncer
