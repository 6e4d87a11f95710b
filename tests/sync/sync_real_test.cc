// Syncer against a real Cyrus 3.6 spool, with the replica in-process: proves the syscall budget
// (an unchanged folder costs its cyrus.* stats only; no message file is ever stat()ed; a changed
// folder opens only the new message files) and that a Cyrus writer blocks while a folder's
// metadata is streamed under Cyrus's locks.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <regex>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>

#include "cyrus/mboxlist.h"
#include "syncer/folder_sync.h"
#include "tests/sync/real_cyrus.h"
#include "tests/testutil/counting_env.h"

namespace cyrsync::testing {
namespace {

namespace fs = std::filesystem;

class RealSpoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!RealCyrusAvailable()) return;
    char tmpl[] = "/tmp/csrt-XXXXXX";
    base_ = mkdtemp(tmpl);
    ASSERT_EQ(Lab("setup " + base_ + "/m m"), 0);
    ASSERT_EQ(Lab("start " + base_ + "/m m"), 0);
    ASSERT_EQ(Lab("populate " + base_ + "/m m --messages 40"), 0);
  }
  static void TearDownTestSuite() {
    if (base_.empty()) return;
    (void)Lab("stop " + base_ + "/m m");
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  void SetUp() override {
    REQUIRE_REAL_CYRUS();
    auto conf = cyrus::LoadImapdConf(Env::Default(), base_ + "/m/etc/imapd.conf");
    ASSERT_TRUE(conf.ok()) << conf.error().ToString();
    master_ = *conf;
    replica_base_ = base_ + "/r" + std::to_string(++counter_);
    ASSERT_EQ(Lab("setup " + replica_base_ + " r"), 0);
    auto rconf = cyrus::LoadImapdConf(Env::Default(), replica_base_ + "/etc/imapd.conf");
    ASSERT_TRUE(rconf.ok());
    replica_conf_ = *rconf;
    auto store = replica::Store::Open(Env::Default(), replica_conf_, {}, NullLogger());
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    store_ = std::move(*store);
    replica_ = std::make_unique<InProcessReplica>(store_.get());
  }
  void TearDown() override {
    replica_.reset();
    store_.reset();
  }

  syncer::Options QuietOptions() {
    syncer::Options o;
    o.racy_window_ns = 0;  // the master is idle in these tests
    o.workers = 2;
    return o;
  }

  std::string Spool() const { return base_ + "/m/spool"; }
  bool UnderSpool(const std::string& p) const { return p.rfind(Spool(), 0) == 0; }

  // Delivers one message to alice's INBOX over LMTP.
  void DeliverOne(const std::string& tag) {
    std::string py =
        "import sys; sys.path.insert(0, '" + SourceDir() + "/tests/integration'); "
        "import cyruslab as cl; i = cl.CyrusInstance('" + base_ + "/m', 'm'); "
        "l = i.lmtp(); l.deliver('x@example.org', ['alice'], b'From: x@example.org\\r\\n"
        "To: alice\\r\\nSubject: " + tag + "\\r\\nMessage-ID: <" + tag +
        "@t>\\r\\n\\r\\nhello\\r\\n'); l.close()";
    ASSERT_EQ(std::system(("python3 -c \"" + py + "\"").c_str()), 0);
  }

  static inline std::string base_;
  static inline int counter_ = 0;
  cyrus::ImapdConf master_, replica_conf_;
  std::string replica_base_;
  std::unique_ptr<replica::Store> store_;
  std::unique_ptr<InProcessReplica> replica_;
};

const std::regex kMessageFile(R"(/[0-9]+\.$)");

TEST_F(RealSpoolTest, UnchangedFolderCostsOnlyItsMetadataStats) {
  CountingEnv env(Env::Default());
  syncer::Syncer s(&env, master_, QuietOptions(), replica_->Connector(), NullLogger());
  auto first = s.RunPass();
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  ASSERT_GT(first->folders, 10u);
  EXPECT_EQ(first->folders_changed, first->folders);
  EXPECT_EQ(first->folders_failed, 0u);

  env.Clear();
  auto second = s.RunPass();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->folders_changed, 0u);
  size_t meta_stats = 0, walks = 0;
  for (const auto& op : env.ops()) {
    EXPECT_FALSE(std::regex_search(op.path, kMessageFile)) << op.kind << " " << op.path;
    if (!UnderSpool(op.path) || op.path == Spool()) continue;
    if (op.kind == "walk") {  // one path walk for the folders of a directory, then their stats
      ++walks;
      continue;
    }
    EXPECT_EQ(op.kind, "stat") << op.path;  // no readdir, no open, no lock
    std::string name = Basename(op.path);
    EXPECT_TRUE(name == "cyrus.header" || name == "cyrus.index") << op.path;
    ++meta_stats;
  }
  EXPECT_EQ(meta_stats, 2 * second->folders);
  EXPECT_LE(walks, second->folders);
}

TEST_F(RealSpoolTest, ChangedFolderOpensOnlyTheNewMessageAndStatsNone) {
  CountingEnv env(Env::Default());
  syncer::Syncer s(&env, master_, QuietOptions(), replica_->Connector(), NullLogger());
  ASSERT_TRUE(s.RunPass().ok());
  DeliverOne("budget-" + std::to_string(counter_));
  env.Clear();
  auto pass = s.RunPass();
  ASSERT_TRUE(pass.ok()) << pass.error().ToString();
  EXPECT_GE(pass->folders_changed, 1u);
  EXPECT_EQ(pass->messages_sent, 1u);
  size_t message_opens = 0;
  for (const auto& op : env.ops()) {
    if (!UnderSpool(op.path)) continue;
    EXPECT_NE(op.kind, "list") << op.path;
    if (std::regex_search(op.path, kMessageFile)) {
      EXPECT_EQ(op.kind, "open") << "message files are opened and read, never stat()ed: "
                                 << op.path;
      ++message_opens;
    }
  }
  EXPECT_EQ(message_opens, 1u);
}

// Blocks the first DATA frame until released, so the test can act while metadata is in flight.
class GateTransport final : public protocol::Transport {
 public:
  explicit GateTransport(std::unique_ptr<protocol::Transport> inner) : inner_(std::move(inner)) {}
  Status Send(uint16_t type, std::string_view payload) override {
    if (type == protocol::kData && !gated_) {
      gated_ = true;
      std::unique_lock g(mu_);
      reached_ = true;
      cv_.notify_all();
      cv_.wait(g, [&] { return released_; });
    }
    return inner_->Send(type, payload);
  }
  Result<protocol::Frame> Receive() override { return inner_->Receive(); }
  void Close() override { inner_->Close(); }
  void WaitReached() {
    std::unique_lock g(mu_);
    cv_.wait(g, [&] { return reached_; });
  }
  void Release() {
    std::lock_guard g(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::unique_ptr<protocol::Transport> inner_;
  bool gated_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool reached_ = false, released_ = false;
};

TEST_F(RealSpoolTest, CyrusWriterBlocksWhileFolderMetadataIsStreamed) {
  auto mailboxes = cyrus::LoadMailboxList(Env::Default(), master_);
  ASSERT_TRUE(mailboxes.ok());
  const cyrus::MailboxEntry* inbox = nullptr;
  for (const auto& mb : *mailboxes) {
    if (mb.intname == "user.alice") inbox = &mb;
  }
  ASSERT_NE(inbox, nullptr);
  syncer::Folder folder = syncer::DescribeFolder(master_, *inbox);
  auto conn = replica_->Connector()();
  ASSERT_TRUE(conn.ok());
  GateTransport gate(std::move(*conn));
  ASSERT_TRUE(syncer::Handshake(gate).ok());

  auto st = Env::Default()->Stat(master_.configdirectory);
  syncer::FolderContext ctx{Env::Default(), &master_, {true, st->uid, st->gid}, 0,
                            NullLogger().get()};
  Status copy_status;
  std::thread copier([&] { copy_status = syncer::SyncFolder(gate, ctx, folder, false, false).status(); });
  gate.WaitReached();

  // A real Cyrus writer (IMAP STORE as alice) must wait for our shared locks.
  const std::string marker = base_ + "/store-done-" + std::to_string(counter_);
  std::string py = "import sys; sys.path.insert(0, '" + SourceDir() +
                   "/tests/integration'); import cyruslab as cl; c = cl.CyrusInstance('" + base_ +
                   "/m', 'm').imap('alice'); c.select('INBOX'); "
                   "c.store('1', '+FLAGS', '(\\\\Flagged)'); open('" + marker + "', 'w').close()";
  ASSERT_EQ(std::system(("timeout 60 python3 -c \"" + py + "\" &").c_str()), 0);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_FALSE(fs::exists(marker)) << "the writer did not wait for the copy's locks";

  gate.Release();
  copier.join();
  EXPECT_TRUE(copy_status.ok()) << copy_status.ToString();
  for (int i = 0; i < 300 && !fs::exists(marker); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(fs::exists(marker)) << "the writer did not proceed after the locks were released";
  gate.Close();
}

// Finds a folder of the master by internal name.
syncer::Folder FindFolder(const cyrus::ImapdConf& conf, const std::string& intname) {
  auto mailboxes = cyrus::LoadMailboxList(Env::Default(), conf);
  EXPECT_TRUE(mailboxes.ok());
  for (const auto& mb : *mailboxes) {
    if (mb.intname == intname) return syncer::DescribeFolder(conf, mb);
  }
  ADD_FAILURE() << "no folder " << intname;
  return {};
}

std::string ReadAll(const std::string& path) {
  auto r = ReadFileToString(Env::Default(), path);
  return r.ok() ? *r : std::string();
}

void WriteInPlace(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

TEST_F(RealSpoolTest, CorruptSourceIndexFailsOnlyThatFolderAndKeepsTheReplicaCopy) {
  std::ostringstream logs;
  auto log = std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(logs));
  syncer::Syncer s(Env::Default(), master_, QuietOptions(), replica_->Connector(), log);
  ASSERT_TRUE(s.RunPass().ok());

  syncer::Folder inbox = FindFolder(master_, "user.bob");
  std::string master_index = *cyrus::Resolve(master_, inbox.index);
  std::string replica_index = *cyrus::Resolve(replica_conf_, inbox.index);
  const std::string good = ReadAll(master_index);
  ASSERT_GT(good.size(), 200u);
  std::string bad = good;
  bad[160 + 12] ^= 0x40;  // the first record's size field: its CRC no longer matches
  WriteInPlace(master_index, bad);
  auto pass = s.RunPass();
  WriteInPlace(master_index, good);
  ASSERT_TRUE(pass.ok()) << pass.error().ToString();
  EXPECT_EQ(pass->folders_failed, 1u);
  EXPECT_NE(logs.str().find(master_index), std::string::npos) << logs.str();
  EXPECT_NE(logs.str().find("offset 160"), std::string::npos) << logs.str();
  EXPECT_EQ(ReadAll(replica_index), good) << "the replica's good copy must stay";
}

// The replica answers a folder once its install is queued; an install that fails after that
// answer is reported at the end of the worker's connection (FOLDER_FLUSH): the pass counts the
// folder as failed and names it, and the next pass installs it.
TEST_F(RealSpoolTest, AnInstallThatFailsOnTheReplicaAfterItsAnswerFailsThePass) {
  syncer::Folder inbox = FindFolder(master_, "user.bob");
  const std::string refused = *cyrus::Resolve(replica_conf_, inbox.index);
  class RefuseEnv final : public EnvWrapper {
   public:
    explicit RefuseEnv(std::string path) : EnvWrapper(Env::Default()), path_(std::move(path)) {}
    std::atomic<bool> refuse{true};
    Status Rename(const std::string& from, const std::string& to) override {
      if (refuse && to == path_) return IOError("rename refused (test): " + to);
      return EnvWrapper::Rename(from, to);
    }

   private:
    std::string path_;
  } env(refused);
  replica_.reset();
  store_.reset();
  auto store = replica::Store::Open(&env, replica_conf_, {}, NullLogger());
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  store_ = std::move(*store);
  replica_ = std::make_unique<InProcessReplica>(store_.get());

  std::ostringstream logs;
  auto log = std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(logs));
  syncer::Syncer s(Env::Default(), master_, QuietOptions(), replica_->Connector(), log);
  auto pass = s.RunPass();
  ASSERT_TRUE(pass.ok()) << pass.error().ToString();
  EXPECT_EQ(pass->folders_failed, 1u);
  EXPECT_NE(logs.str().find("folder install failed on the replica mailbox=\"user.bob\""),
            std::string::npos)
      << logs.str();
  EXPECT_FALSE(fs::exists(refused));
  env.refuse = false;
  auto again = s.RunPass();
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(again->folders_failed, 0u);
  EXPECT_EQ(again->folders_changed, 1u);
  EXPECT_EQ(ReadAll(refused), ReadAll(*cyrus::Resolve(master_, inbox.index)));
}

TEST_F(RealSpoolTest, FolderVanishedFromTheSourceIsCountedNotDeleted) {
  syncer::Syncer s(Env::Default(), master_, QuietOptions(), replica_->Connector(), NullLogger());
  auto first = s.RunPass();
  ASSERT_TRUE(first.ok());
  syncer::Folder drafts = FindFolder(master_, "user.carol.Drafts");
  std::string dir = Dirname(*cyrus::Resolve(master_, drafts.index));
  std::string replica_dir = Dirname(*cyrus::Resolve(replica_conf_, drafts.index));
  ASSERT_EQ(std::rename(dir.c_str(), (dir + ".away").c_str()), 0);
  auto pass = s.RunPass();
  ASSERT_EQ(std::rename((dir + ".away").c_str(), dir.c_str()), 0);
  ASSERT_TRUE(pass.ok()) << pass.error().ToString();
  EXPECT_EQ(pass->folders_missing, 1u);
  EXPECT_EQ(pass->folders_failed, 0u);
  EXPECT_EQ(pass->folders_deleted, 0u);
  EXPECT_TRUE(fs::exists(replica_dir + "/cyrus.index"));
}

// mailboxes.db is copied after every other server file (annotations.db, quota, seen, subs,
// sieve): a pass killed in between never leaves a replica whose mailboxes.db lists a folder
// whose annotations or user files are not there yet.
TEST_F(RealSpoolTest, MailboxesDbIsTheLastServerFileCopied) {
  CountingEnv env(Env::Default());
  syncer::Syncer s(&env, master_, QuietOptions(), replica_->Connector(), NullLogger());
  auto pass = s.RunPass();
  ASSERT_TRUE(pass.ok()) << pass.error().ToString();
  ASSERT_GT(pass->server_files_copied, 2u);
  const auto ops = env.ops();
  size_t last_db = ops.size();
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind == "open" && ops[i].path == master_.mboxlist_db_path) last_db = i;
  }
  ASSERT_LT(last_db, ops.size());
  size_t others = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const auto& op = ops[i];
    if (op.kind != "open" || op.path == master_.mboxlist_db_path) continue;
    const bool server_file = op.path.rfind(master_.configdirectory + "/", 0) == 0 ||
                             op.path.rfind(master_.sievedir + "/", 0) == 0;
    if (!server_file) continue;
    ++others;
    EXPECT_LT(i, last_db) << op.path << " copied after mailboxes.db";
  }
  EXPECT_GE(others, 2u);  // annotations.db and the users' files at least
}

TEST_F(RealSpoolTest, UserAndMailboxScopesCopyOnlyTheirFolders) {
  syncer::Syncer all(Env::Default(), master_, QuietOptions(), replica_->Connector(), NullLogger());
  ASSERT_TRUE(all.RunPass().ok());
  DeliverOne("scope-" + std::to_string(counter_));
  auto scoped = [&](std::vector<std::string> users, std::vector<std::string> boxes) {
    syncer::Options o = QuietOptions();
    o.all = false;
    o.users = std::move(users);
    o.mailboxes = std::move(boxes);
    syncer::Syncer s(Env::Default(), master_, o, replica_->Connector(), NullLogger());
    return s.RunPass();
  };
  auto bob = scoped({"bob"}, {});
  ASSERT_TRUE(bob.ok()) << bob.error().ToString();
  EXPECT_EQ(bob->folders_changed, 0u);
  EXPECT_EQ(bob->folders_deleted, 0u) << "a scoped pass must not delete other users' folders";
  auto other_box = scoped({}, {"user.alice.Sent"});
  ASSERT_TRUE(other_box.ok());
  EXPECT_EQ(other_box->folders, 1u);
  EXPECT_EQ(other_box->folders_changed, 0u);
  auto inbox = scoped({}, {"user.alice"});
  ASSERT_TRUE(inbox.ok());
  EXPECT_EQ(inbox->folders_changed, 1u);
  EXPECT_EQ(inbox->messages_sent, 1u);
}

// A file copied within the racy window of its last change may change again inside the same
// timestamp tick without its stat tuple changing; it must be copied again on the next pass.
TEST_F(RealSpoolTest, FolderCopiedWithinTheRacyWindowIsCopiedAgainNextPass) {
  syncer::Options opts = QuietOptions();
  syncer::Syncer quiet(Env::Default(), master_, opts, replica_->Connector(), NullLogger());
  ASSERT_TRUE(quiet.RunPass().ok());
  DeliverOne("racy-" + std::to_string(counter_));
  opts.racy_window_ns = int64_t{3600} * 1'000'000'000;  // every recent change counts as racy
  syncer::Syncer racy(Env::Default(), master_, opts, replica_->Connector(), NullLogger());
  auto pass = racy.RunPass();
  ASSERT_TRUE(pass.ok());
  EXPECT_GE(pass->folders_unsettled, 1u);
  auto again = quiet.RunPass();  // nothing changed on the source since
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->folders_changed, pass->folders_unsettled);
  auto settled = quiet.RunPass();
  ASSERT_TRUE(settled.ok());
  EXPECT_EQ(settled->folders_changed, 0u);
}

}  // namespace
}  // namespace cyrsync::testing
