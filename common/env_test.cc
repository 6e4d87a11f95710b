#include "common/env.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "tests/testutil/counting_env.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync {
namespace {

TEST(EnvTest, AtomicWriteReplacesWholeFile) {
  testing::TempDir dir;
  Env* env = Env::Default();
  std::string p = dir.Sub("f");
  ASSERT_TRUE(AtomicWriteFile(env, p, "old", {}).ok());
  ASSERT_TRUE(AtomicWriteFile(env, p, "new content", {.mode = 0640, .mtime_ns = 1000000000123}).ok());
  auto got = ReadFileToString(env, p);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "new content");
  auto st = env->Stat(p);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->mode & 0777, 0640u);
  EXPECT_EQ(st->mtime_ns, 1000000000123);
  EXPECT_EQ(env->Stat(p + ".cyrsync-tmp").error().code(), Code::kNotFound);
}

TEST(EnvTest, AppendableKeepsContentAndAppendsAtEnd) {
  testing::TempDir dir;
  Env* env = Env::Default();
  std::string p = dir.Sub("log");
  {
    auto f = env->NewAppendable(p, 0640);  // creates
    ASSERT_TRUE(f.ok()) << f.error().ToString();
    ASSERT_TRUE((*f)->Append("abc").ok());
    ASSERT_TRUE((*f)->Sync().ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  {
    auto f = env->NewAppendable(p, 0600);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append("def").ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  EXPECT_EQ(*ReadFileToString(env, p), "abcdef");
  EXPECT_EQ(env->Stat(p)->mode & 0777, 0640u);
}

TEST(EnvTest, TruncateCutsFile) {
  testing::TempDir dir;
  Env* env = Env::Default();
  std::string p = dir.Sub("t");
  ASSERT_TRUE(AtomicWriteFile(env, p, "0123456789", {}).ok());
  ASSERT_TRUE(env->Truncate(p, 4).ok());
  EXPECT_EQ(*ReadFileToString(env, p), "0123");
  auto f = env->NewAppendable(p, 0600);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("x").ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ(*ReadFileToString(env, p), "0123x");
  EXPECT_EQ(env->Truncate(dir.Sub("missing"), 0).code(), Code::kNotFound);
}

TEST(EnvTest, ListDirReportsTypes) {
  testing::TempDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(MakeDirs(env, dir.Sub("a/b"), 0755).ok());
  ASSERT_TRUE(AtomicWriteFile(env, dir.Sub("a/1."), "x", {}).ok());
  ASSERT_TRUE(env->Symlink("1.", dir.Sub("a/l")).ok());
  auto ls = env->ListDir(dir.Sub("a"));
  ASSERT_TRUE(ls.ok());
  std::map<std::string, EntryType> m;
  for (auto& e : *ls) m[e.name] = e.type;
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m["b"], EntryType::kDir);
  EXPECT_EQ(m["1."], EntryType::kFile);
  EXPECT_EQ(m["l"], EntryType::kSymlink);
}

// PosixEnv's streaming ScanDir and the default one over ListDir (a wrapper's) see the same
// entries; a missing directory is kNotFound naming it.
TEST(EnvTest, ScanDirSeesWhatListDirLists) {
  testing::TempDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(MakeDirs(env, dir.Sub("a/b"), 0755).ok());
  for (int i = 1; i <= 300; ++i) {
    ASSERT_TRUE(AtomicWriteFile(env, dir.Sub("a/" + std::to_string(i) + "."), "x", {}).ok());
  }
  ASSERT_TRUE(env->Symlink("1.", dir.Sub("a/l")).ok());
  testing::CountingEnv counting(env);
  for (Env* e : {env, static_cast<Env*>(&counting)}) {
    std::map<std::string, EntryType> m;
    ASSERT_TRUE(e->ScanDir(dir.Sub("a"), [&](std::string_view n, EntryType t) {
                  m[std::string(n)] = t;
                }).ok());
    EXPECT_EQ(m.size(), 302u);
    EXPECT_EQ(m["b"], EntryType::kDir);
    EXPECT_EQ(m["300."], EntryType::kFile);
    EXPECT_EQ(m["l"], EntryType::kSymlink);
    Status missing = e->ScanDir(dir.Sub("none"), [](std::string_view, EntryType) {});
    EXPECT_EQ(missing.code(), Code::kNotFound);
    EXPECT_NE(missing.message().find(dir.Sub("none")), std::string::npos);
  }
}

TEST(EnvTest, MissingFileIsNotFoundWithPath) {
  auto r = Env::Default()->Stat("/nonexistent/cyrsync/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kNotFound);
  EXPECT_NE(r.error().message().find("/nonexistent/cyrsync/x"), std::string::npos);
}

// StatInDir gives exactly what a Stat of each joined path gives: values, kNotFound for a missing
// name or directory, a symlink itself (not its target), and names with a '/' in them (a symlink
// on the way is followed, as lstat follows it).
TEST(EnvTest, StatInDirMatchesStat) {
  testing::TempDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(env->MakeDir(dir.Sub("d"), 0755).ok());
  ASSERT_TRUE(env->MakeDir(dir.Sub("d/sub"), 0755).ok());
  ASSERT_TRUE(AtomicWriteFile(env, dir.Sub("d/a"), "aaa", {}).ok());
  ASSERT_TRUE(AtomicWriteFile(env, dir.Sub("d/sub/b"), "bb", {}).ok());
  ASSERT_TRUE(env->Symlink("a", dir.Sub("d/link")).ok());
  ASSERT_TRUE(env->Symlink("sub", dir.Sub("d/dlink")).ok());
  const std::vector<std::string> names = {"a",   "missing", "link",      "sub/b",
                                          "sub", "dlink/b", "missing/b", "a/b"};
  for (const std::string& d : {dir.Sub("d"), dir.Sub("nodir")}) {
    auto got = env->StatInDir(d, names);
    ASSERT_EQ(got.size(), names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      auto want = env->Stat(d + "/" + names[i]);
      ASSERT_EQ(got[i].ok(), want.ok()) << d << " " << names[i];
      if (!want.ok()) {
        EXPECT_EQ(got[i].error().code(), want.error().code()) << names[i];
        EXPECT_NE(got[i].error().message().find(names[i]), std::string::npos);
        continue;
      }
      EXPECT_EQ(got[i]->ino, want->ino) << names[i];
      EXPECT_EQ(got[i]->size, want->size) << names[i];
      EXPECT_EQ(got[i]->mode, want->mode) << names[i];
      EXPECT_EQ(got[i]->ctime_ns, want->ctime_ns) << names[i];
    }
  }
  // A wrapper sees one Stat per name (syscall-budget tests count them).
  testing::CountingEnv counting(env);
  counting.StatInDir(dir.Sub("d"), names);
  EXPECT_EQ(counting.Count("stat"), names.size());
}

// PosixEnv's one-call openat2 path and the default per-component walk (which a wrapper such as
// CountingEnv gets) agree on every kind of path.
TEST(EnvTest, StatBeneathRefusesSymlinksOnTheWay) {
  testing::TempDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(env->MakeDir(dir.Sub("real"), 0755).ok());
  ASSERT_TRUE(env->MakeDir(dir.Sub("real/sub"), 0755).ok());
  ASSERT_TRUE(AtomicWriteFile(env, dir.Sub("real/sub/f"), "body", {}).ok());
  ASSERT_TRUE(AtomicWriteFile(env, dir.Sub("file"), "x", {}).ok());
  ASSERT_TRUE(env->Symlink("real", dir.Sub("link")).ok());
  ASSERT_TRUE(env->Symlink("f", dir.Sub("real/sub/flink")).ok());
  testing::CountingEnv walk(env);
  struct Case {
    std::string rel;
    bool ok;
    Code code;
    bool symlink;
  };
  const std::vector<Case> cases = {
      {"real/sub/f", true, Code::kOk, false},   {"real/sub", true, Code::kOk, false},
      {"real/sub/flink", true, Code::kOk, true}, {"link", true, Code::kOk, true},
      {"link/sub/f", false, Code::kInvalidArgument, false},
      {"real/missing/f", false, Code::kNotFound, false},
      {"file/f", false, Code::kNotFound, false}};
  for (const auto& c : cases) {
    for (Env* e : {env, static_cast<Env*>(&walk)}) {
      auto got = e->StatBeneath(dir.path(), c.rel);
      ASSERT_EQ(got.ok(), c.ok) << c.rel;
      if (!c.ok) {
        EXPECT_EQ(got.error().code(), c.code) << c.rel;
        continue;
      }
      auto want = env->Stat(dir.Sub(c.rel));
      ASSERT_TRUE(want.ok());
      EXPECT_EQ(got->ino, want->ino) << c.rel;
      EXPECT_EQ(got->IsSymlink(), c.symlink) << c.rel;
    }
  }
  auto refused = env->StatBeneath(dir.path(), "link/sub/f");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find(dir.Sub("link")), std::string::npos)
      << refused.error().message();
}

TEST(EnvTest, SharedLocksInOneProcessCoexistAndExclusiveWaits) {
  testing::TempDir dir;
  Env* env = Env::Default();
  std::string p = dir.Sub("locks/x.lock");
  auto a = env->LockFile(p, LockMode::kShared, true, {});
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  auto b = env->LockFile(p, LockMode::kShared, true, {});
  ASSERT_TRUE(b.ok());
  std::atomic<bool> got{false};
  std::thread t([&] {
    auto c = env->LockFile(p, LockMode::kExclusive, true, {});
    got = c.ok();
  });
  a->reset();
  EXPECT_FALSE(got.load());
  b->reset();
  t.join();
  EXPECT_TRUE(got.load());
}

TEST(EnvTest, CountingEnvRecordsOps) {
  testing::TempDir dir;
  testing::CountingEnv env(Env::Default());
  (void)env.Stat(dir.path());
  (void)env.ListDir(dir.path());
  EXPECT_EQ(env.Count("stat"), 1u);
  EXPECT_EQ(env.Count("list"), 1u);
}

TEST(PathTest, JoinAndSplit) {
  EXPECT_EQ(JoinPath("/a/", "/b"), "/a/b");
  EXPECT_EQ(JoinPath("/", "b"), "/b");
  EXPECT_EQ(Dirname("/a/b/c"), "/a/b");
  EXPECT_EQ(Basename("/a/b/c"), "c");
  EXPECT_EQ(Dirname("/a"), "/");
}

TEST(StatusTest, ResultCarriesErrorsAndValues) {
  Result<int> r = 5;
  EXPECT_EQ(*r, 5);
  Result<int> e = CorruptionError("bad at offset 12");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), Code::kCorruption);
  auto f = [&]() -> Status {
    ASSIGN_OR_RETURN(int v, e);
    (void)v;
    return Status::Ok();
  };
  EXPECT_EQ(f().code(), Code::kCorruption);
  EXPECT_EQ(PosixError("open x", ENOENT).code(), Code::kNotFound);
}

// Reading through the Env leaves atime alone. The control, a plain open() and read of a file with
// the same times, shows that this filesystem would otherwise have updated it (relatime updates
// an atime older than the mtime).
TEST(EnvTest, OpenReadDoesNotTouchAtime) {
  testing::TempDir dir;
  const std::string ours = dir.Sub("ours"), control = dir.Sub("control");
  const struct timespec times[2] = {{946684800, 0}, {UTIME_NOW, UTIME_NOW}};  // atime 2000-01-01
  for (const std::string& p : {ours, control}) {
    ASSERT_TRUE(AtomicWriteFile(Env::Default(), p, "body", {}).ok());
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0);
  }
  auto atime = [](const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_atim.tv_sec;
  };
  int fd = ::open(control.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[8];
  ASSERT_EQ(::read(fd, buf, sizeof buf), 4);
  ::close(fd);
  if (atime(control) == 946684800) GTEST_SKIP() << "this filesystem does not update atime";
  auto f = Env::Default()->OpenRead(ours);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(*(*f)->ReadAll(), "body");
  EXPECT_EQ(atime(ours), 946684800);
}

}  // namespace
}  // namespace cyrsync
