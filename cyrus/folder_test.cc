// LockFolderForRead takes Cyrus's locks for the index version the folder holds (§11.2).
#include "cyrus/folder.h"

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::cyrus {
namespace {

// Records every lock taken: lock files by path, and fcntl locks on opened files by path.
class LockOrderEnv : public EnvWrapper {
 public:
  LockOrderEnv() : EnvWrapper(Env::Default()) {}
  std::vector<std::string> locks;

  Result<std::unique_ptr<FileLock>> LockFile(const std::string& p, LockMode m, bool c,
                                             const Owner& o) override {
    locks.push_back("lockfile " + Basename(p));
    return EnvWrapper::LockFile(p, m, c, o);
  }
  Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& p) override {
    ASSIGN_OR_RETURN(auto f, EnvWrapper::OpenRead(p));
    return std::unique_ptr<ReadableFile>(new Recording(std::move(f), this));
  }

 private:
  class Recording : public ReadableFile {
   public:
    Recording(std::unique_ptr<ReadableFile> f, LockOrderEnv* env) : f_(std::move(f)), env_(env) {}
    Result<size_t> ReadAt(uint64_t off, std::span<char> out) override { return f_->ReadAt(off, out); }
    Result<FileStat> Stat() override { return f_->Stat(); }
    Status Lock(LockMode mode) override {
      env_->locks.push_back(std::string(mode == LockMode::kShared ? "rdlck " : "wrlck ") +
                            Basename(f_->path()));
      return f_->Lock(mode);
    }
    const std::string& path() const override { return f_->path(); }

   private:
    std::unique_ptr<ReadableFile> f_;
    LockOrderEnv* env_;
  };
};

class FolderLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = ParseImapdConf("configdirectory: " + dir_.path() + "/conf\npartition-default: " +
                                dir_.path() + "/spool\n",
                            dir_.path() + "/imapd.conf");
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    conf_ = *c;
    mb_.intname = "user.bob";
    mb_.uniqueid = "u1";
    mb_.partition = "default";
    mb_.mbtype = "el";
    mb_.legacy_dirs = true;
    folder_ = DescribeFolder(conf_, mb_);
  }

  void WriteMeta(const RootedPath& p, std::string_view data) {
    auto abs = Resolve(conf_, p);
    ASSERT_TRUE(abs.ok());
    ASSERT_TRUE(MakeDirs(Env::Default(), Dirname(*abs), 0700).ok());
    ASSERT_TRUE(AtomicWriteFile(Env::Default(), *abs, data, {}).ok());
  }

  // Just enough of an index for the version check: the minor version at offset 8.
  std::string Index(uint32_t minor) {
    std::string b(16, '\0');
    std::string v;
    AppendBE32(&v, minor);
    b.replace(8, 4, v);
    return b;
  }

  testing::TempDir dir_;
  ImapdConf conf_;
  MailboxEntry mb_;
  Folder folder_;
};

TEST_F(FolderLockTest, CurrentIndexLocksNamespaceNameAndIndexOnly) {
  WriteMeta(folder_.header, "h");
  WriteMeta(folder_.index, Index(17));
  LockOrderEnv env;
  auto l = LockFolderForRead(&env, conf_, folder_, {});
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  const std::vector<std::string> want = {"lockfile *U*bob.lock", "lockfile bob.lock",
                                         "rdlck cyrus.index"};
  EXPECT_EQ(env.locks, want);
  EXPECT_EQ((*l)->header, nullptr);
}

TEST_F(FolderLockTest, PreNameLockIndexAlsoLocksHeaderThenExpungeLikeCyrus23) {
  WriteMeta(folder_.header, "h");
  WriteMeta(folder_.index, Index(10));
  WriteMeta(folder_.expunge, Index(10));
  LockOrderEnv env;
  auto l = LockFolderForRead(&env, conf_, folder_, {});
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  const std::vector<std::string> want = {"lockfile *U*bob.lock", "lockfile bob.lock",
                                         "rdlck cyrus.header", "rdlck cyrus.index",
                                         "rdlck cyrus.expunge"};
  EXPECT_EQ(env.locks, want);
  EXPECT_NE((*l)->expunge, nullptr);
}

TEST_F(FolderLockTest, MissingExpungeIsFineMissingIndexIsNotFound) {
  WriteMeta(folder_.header, "h");
  WriteMeta(folder_.index, Index(9));
  LockOrderEnv env;
  auto l = LockFolderForRead(&env, conf_, folder_, {});
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ((*l)->expunge, nullptr);
  l->reset();
  ASSERT_TRUE(Env::Default()->Remove(*Resolve(conf_, folder_.index)).ok());
  EXPECT_EQ(LockFolderForRead(&env, conf_, folder_, {}).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace cyrsync::cyrus
