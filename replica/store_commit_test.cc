// Store's group commit: sets handed in while a commit flushes are committed together by the
// next one (one syncfs, one journal), each set still installed whole; InstallAsync returns
// before its set is installed and reports through its callback.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "replica/session_test_util.h"

namespace cyrsync::replica {
namespace {

using namespace ::cyrsync::replica::test;  // NOLINT(google-build-using-namespace)

// Holds the first syncfs until released; counts syncfs calls and journals.
class GateEnv : public EnvWrapper {
 public:
  GateEnv() : EnvWrapper(Env::Default()) {}
  Status SyncFileSystem(const std::string& p) override {
    std::unique_lock lock(mu_);
    if (syncfs_++ == 0) {
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return released_; });
    }
    return EnvWrapper::SyncFileSystem(p);
  }
  Result<std::unique_ptr<WritableFile>> NewWritable(const std::string& p, uint32_t mode) override {
    if (Basename(p).rfind("journal-", 0) == 0) ++journals_;
    return EnvWrapper::NewWritable(p, mode);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (Basename(to) == fail_rename_) return IOError("rename refused (test): " + to);
    return EnvWrapper::Rename(from, to);
  }
  void WaitEntered() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return entered_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int syncfs() {
    std::lock_guard lock(mu_);
    return syncfs_;
  }
  std::atomic<int> journals_{0};
  std::string fail_rename_;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int syncfs_ = 0;
  bool entered_ = false, released_ = false;
};

class ReplicaStoreCommitTest : public ReplicaFixture {
 protected:
  // A store on env_ in place of the fixture's (the manifest has one user at a time).
  Store& OpenGated() {
    store_.reset();
    auto opened = Store::Open(&env_, *conf_, opts_, NullLogger());
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    gated_ = std::move(*opened);
    return *gated_;
  }

  // A staged set of two files for folder `user/<who>`, with the given contents.
  std::vector<StagedFile> StageSet(Store& store, const std::string& who) {
    std::vector<StagedFile> set;
    for (const char* name : {"cyrus.header", "cyrus.index"}) {
      const std::string rel = "user/" + who + "/" + name;
      fs::create_directories(Spool("user/" + who));
      auto staged = store.NewStagePath({"partition-default", rel});
      EXPECT_TRUE(staged.ok());
      WriteFile(*staged, who + " " + name);
      set.push_back({*staged, Spool(rel)});
    }
    return set;
  }

  GateEnv env_;  // outlives gated_
  std::unique_ptr<Store> gated_;
};

TEST_F(ReplicaStoreCommitTest, SetsQueuedDuringACommitShareTheNextOne) {
  Store& store = OpenGated();
  GateEnv& env = env_;
  const std::vector<std::string> who = {"first", "b", "c", "d"};
  std::vector<std::vector<StagedFile>> sets;
  for (const auto& w : who) sets.push_back(StageSet(store, w));
  std::vector<Status> result(who.size());
  std::vector<std::thread> threads;
  threads.emplace_back([&] { result[0] = store.InstallTogether(sets[0]); });
  env.WaitEntered();  // the first set is flushing
  for (size_t i = 1; i < who.size(); ++i) {
    threads.emplace_back([&, i] { result[i] = store.InstallTogether(sets[i]); });
  }
  while (store.QueuedCommitsForTest() < who.size()) std::this_thread::yield();
  env.Release();
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < who.size(); ++i) {
    EXPECT_TRUE(result[i].ok()) << who[i] << ": " << result[i].ToString();
    EXPECT_EQ(ReadFile(Spool("user/" + who[i] + "/cyrus.index")), who[i] + " cyrus.index");
    EXPECT_EQ(ReadFile(Spool("user/" + who[i] + "/cyrus.header")), who[i] + " cyrus.header");
  }
  EXPECT_EQ(env.syncfs(), 2);  // the first set alone, then the three queued ones together
  EXPECT_EQ(env.journals_.load(), 2);
  store.WaitInstalled();  // a set's waiter may return before its group is closed
  EXPECT_EQ(store.QueuedCommitsForTest(), 0u);
  for (const auto& e : fs::directory_iterator(opts_.state_dir)) {
    EXPECT_NE(e.path().filename().string().rfind("journal-", 0), 0u) << e.path();
  }
}

TEST_F(ReplicaStoreCommitTest, AFailedRenameFailsOnlyItsOwnSetInTheGroup) {
  Store& store = OpenGated();
  GateEnv& env = env_;
  auto lead = StageSet(store, "lead");
  auto bad = StageSet(store, "bad");
  auto good = StageSet(store, "good");
  bad[0].final = Spool("user/bad/refused");
  env.fail_rename_ = "refused";
  Status lead_st, bad_st, good_st;
  std::thread t1([&] { lead_st = store.InstallTogether(lead); });
  env.WaitEntered();
  std::thread t2([&] { bad_st = store.InstallTogether(bad); });
  while (store.QueuedCommitsForTest() < 2) std::this_thread::yield();
  std::thread t3([&] { good_st = store.InstallTogether(good); });
  while (store.QueuedCommitsForTest() < 3) std::this_thread::yield();
  env.Release();
  for (auto* t : {&t1, &t2, &t3}) t->join();
  EXPECT_EQ(env.syncfs(), 2);
  EXPECT_TRUE(lead_st.ok()) << lead_st.ToString();
  EXPECT_FALSE(bad_st.ok());
  EXPECT_NE(bad_st.ToString().find("refused"), std::string::npos) << bad_st.ToString();
  EXPECT_FALSE(Exists(Spool("user/bad/cyrus.index")));  // nothing of the set after the failure
  EXPECT_FALSE(Exists(bad[1].staged));                   // and its temp is gone
  EXPECT_TRUE(good_st.ok()) << good_st.ToString();
  EXPECT_EQ(ReadFile(Spool("user/good/cyrus.index")), "good cyrus.index");
}

TEST_F(ReplicaStoreCommitTest, InstallAsyncReturnsAtOnceAndReportsEachSetWhenItIsInstalled) {
  Store& store = OpenGated();
  GateEnv& env = env_;
  auto first = StageSet(store, "first");
  auto second = StageSet(store, "second");
  std::mutex mu;
  std::vector<std::pair<std::string, Status>> reported;
  auto report = [&](const std::string& who) {
    return [&, who](Status st) {
      std::lock_guard lock(mu);
      // Called once the set is in place: its files are already at their final names.
      EXPECT_EQ(ReadFile(Spool("user/" + who + "/cyrus.index")), who + " cyrus.index");
      reported.emplace_back(who, std::move(st));
    };
  };
  store.InstallAsync(first, report("first"));
  env.WaitEntered();  // returned while the first set's flush is held
  store.InstallAsync(second, report("second"));
  EXPECT_EQ(store.QueuedCommitsForTest(), 2u);
  {
    std::lock_guard lock(mu);
    EXPECT_TRUE(reported.empty());
  }
  EXPECT_FALSE(Exists(Spool("user/first/cyrus.index")));
  env.Release();
  store.WaitInstalled();
  std::lock_guard lock(mu);
  ASSERT_EQ(reported.size(), 2u);
  EXPECT_EQ(reported[0].first, "first");
  EXPECT_EQ(reported[1].first, "second");
  for (const auto& [who, st] : reported) EXPECT_TRUE(st.ok()) << who << ": " << st.ToString();
  EXPECT_EQ(store.QueuedCommitsForTest(), 0u);
}

// While a group commits, sets queue up only to max_queued_files files; the next one waits until
// the committer takes the queue.
TEST_F(ReplicaStoreCommitTest, InstallAsyncWaitsWhileTheQueueHoldsTooManyFiles) {
  opts_.max_queued_files = 3;
  Store& store = OpenGated();
  GateEnv& env = env_;
  auto first = StageSet(store, "first");
  auto second = StageSet(store, "second");
  auto third = StageSet(store, "third");
  std::atomic<int> ok{0};
  store.InstallAsync(first, [&](Status st) { ok += st.ok(); });
  env.WaitEntered();
  store.InstallAsync(second, [&](Status st) { ok += st.ok(); });  // 2 files queued: room
  std::atomic<bool> third_queued{false};
  std::thread t([&] {
    store.InstallAsync(third, [&](Status st) { ok += st.ok(); });  // 2 + 2 > 3: waits
    third_queued = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(third_queued.load());
  EXPECT_EQ(store.QueuedCommitsForTest(), 2u);
  env.Release();
  t.join();
  store.WaitInstalled();
  EXPECT_EQ(ok.load(), 3);
  EXPECT_EQ(ReadFile(Spool("user/third/cyrus.index")), "third cyrus.index");
}

TEST_F(ReplicaStoreCommitTest, ClosingTheStoreInstallsWhatIsStillQueued) {
  Store& store = OpenGated();
  GateEnv& env = env_;
  auto first = StageSet(store, "first");
  auto second = StageSet(store, "second");
  std::atomic<int> ok{0};
  store.InstallAsync(first, [&](Status st) { ok += st.ok(); });
  env.WaitEntered();
  store.InstallAsync(second, [&](Status st) { ok += st.ok(); });
  std::thread closer([&] { gated_.reset(); });
  env.Release();
  closer.join();
  EXPECT_EQ(ok.load(), 2);
  EXPECT_EQ(ReadFile(Spool("user/second/cyrus.index")), "second cyrus.index");
}

}  // namespace
}  // namespace cyrsync::replica
