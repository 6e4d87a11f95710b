#include "snapshot/engine.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>
#include <thread>

#include "snapshot/archive_test_util.h"
#include "snapshot/guid_map.h"
#include "snapshot/restore.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::snapshot {
namespace {

using testing::BuildIndexV17;
using testing::TestMessage;

// A daemon's read service in miniature: answers FOLDER_FETCH and MESSAGES_FETCH in order, as the
// real one does, and logs the requests. A uid in expunge_underfoot is ABSENT the first time it
// is asked for and is gone from its folder's index from then on.
class FakeReadService {
 public:
  std::map<std::string, std::vector<TestMessage>> folders;  // folder key -> messages
  std::set<uint32_t> expunge_underfoot;
  std::map<uint32_t, std::string> served_body;  // uid -> a body other than its index describes
  std::vector<std::string> log;
  int64_t gen = 0;  // see Folder()

  void Serve(protocol::Transport& t) {
    while (true) {
      auto f = t.Receive();
      if (!f.ok()) return;  // the client closed its end
      if (f->type == protocol::kFolderFetch) {
        ASSERT_TRUE(AnswerFolder(t, *protocol::DecodeString(f->payload)).ok());
      } else if (f->type == protocol::kMessagesFetch) {
        ASSERT_TRUE(AnswerMessages(t, *protocol::DecodeMessagesFetch(f->payload)).ok());
      } else {
        ADD_FAILURE() << "unexpected request type " << f->type;
        return;
      }
      (void)t.Flush();
    }
  }

 private:
  Status AnswerFolder(protocol::Transport& t, const std::string& key) {
    log.push_back("F:" + key);
    auto it = folders.find(key);
    if (it == folders.end()) return t.Send(protocol::kAbsent, "");
    const std::vector<std::tuple<std::string, std::string, protocol::StatTuple>> files = {
        {"cyrus.header", "header of " + key, {1, 2, 3, 4}},
        {"cyrus.index", BuildIndexV17(it->second), {5, 6 + gen, 7, 8}}};
    for (const auto& [name, bytes, stat] : files) {
      protocol::StateFile info{name};
      info.stat = stat;
      RETURN_IF_ERROR(t.Send(protocol::kMetaFile, protocol::Encode(info)));
      RETURN_IF_ERROR(protocol::SendBody(t, bytes));
    }
    return t.Send(protocol::kOk, "");
  }

  Status AnswerMessages(protocol::Transport& t, const protocol::MessagesFetch& req) {
    log.push_back("M:" + req.folder_key + ":" + std::to_string(req.messages.size()));
    auto& msgs = folders[req.folder_key];
    for (const auto& [uid, archived] : req.messages) {
      auto m = std::find_if(msgs.begin(), msgs.end(), [&](auto& x) { return x.uid == uid; });
      if (m == msgs.end() || expunge_underfoot.erase(uid)) {
        if (m != msgs.end()) msgs.erase(m);
        RETURN_IF_ERROR(t.Send(protocol::kAbsent, ""));
        continue;
      }
      RETURN_IF_ERROR(t.Send(protocol::kMessagePut,
                             protocol::Encode(protocol::MessagePut{uid, archived, 0})));
      auto other = served_body.find(uid);
      RETURN_IF_ERROR(protocol::SendBody(t, other != served_body.end() ? other->second : m->body));
    }
    return Status::Ok();
  }
};

// gen: the cyrus.index stat tuple's mtime, so that a later run sees the folder changed (the
// fake daemon sends the same tuple with the file).
protocol::FolderState Folder(const std::string& key, int64_t gen) {
  protocol::FolderState fs{key, "user.alice." + key, "e", {}};
  fs.files.push_back({"cyrus.header", {}, protocol::EntryKind::kFile, {1, 2, 3, 4}, ""});
  fs.files.push_back({"cyrus.index", {}, protocol::EntryKind::kFile, {5, 6 + gen, 7, 8}, ""});
  return fs;
}

// One snapshot of alice's folders (keys) from daemon into an archive in dir.
Result<SnapshotStats> SnapshotFrom(FakeReadService& daemon, const std::vector<std::string>& keys,
                                   const std::string& dir, int64_t gen = 0) {
  daemon.gen = gen;
  auto [client, server] = protocol::MakePipePair();
  std::thread serving([&daemon, s = server.get()] { daemon.Serve(*s); });
  protocol::UserState state;
  for (const auto& k : keys) state.folders.push_back(Folder(k, gen));
  auto stats = SnapshotUserWithState(Env::Default(), *client, "alice", state, "test",
                                     PathsFor(dir, "alice"));
  client->Close();
  serving.join();
  return stats;
}

// The next folder's FOLDER_FETCH goes out behind a folder's last message request. When that
// folder must be read again (a message expunged underfoot), the answer sent ahead is read first
// and used later: the stream stays in step and no folder is fetched twice for nothing.
TEST(EngineTest, FolderFetchedAheadSurvivesARetryOfTheCurrentFolder) {
  FakeReadService daemon;
  daemon.folders["A"] = {{1, "a1"}, {3, "a3"}, {4, "a4"}};
  daemon.folders["B"] = {{2, "b2"}, {5, "b5"}, {6, "old", cyrus::kFlagSeen, true}};
  daemon.folders["C"] = {{7, "c7"}, {8, "c8"}};
  daemon.expunge_underfoot = {2};
  ::cyrsync::testing::TempDir dir;
  auto stats = SnapshotFrom(daemon, {"A", "B", "C"}, dir.path());
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->messages_added, 7u);
  EXPECT_EQ(stats->folders_fetched, 3u);
  EXPECT_EQ(stats->messages_without_guid, 1u);  // B was read twice, its record counted once
  EXPECT_EQ(daemon.log, (std::vector<std::string>{"F:A", "M:A:3", "F:B", "M:B:3", "F:C", "F:B",
                                                  "M:B:2", "M:C:2"}));

  auto paths = PathsFor(dir.path(), "alice");
  auto idx = IndexDb::Open(paths.index);
  ASSERT_TRUE(idx.ok());
  for (const char* body : {"a1", "a3", "a4", "b5", "old", "c7", "c8"}) {
    EXPECT_TRUE(*(*idx)->HasFile(Sha1Hex(body))) << body;
  }
  EXPECT_FALSE(*(*idx)->HasFile(Sha1Hex("b2")));
  for (const char* key : {"A", "B", "C"}) {
    auto e = (*idx)->Latest(std::string("folders/") + key + "/cyrus.index");
    ASSERT_TRUE(e.ok() && e->has_value()) << key;
  }
  auto report = Verify(Env::Default(), paths.archive, idx->get());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
}

// Records without GUID: each body is fetched once per uid, stored under its own SHA-1 (once,
// whichever uids hold it), and found again through the folder's guid map by restore, by the
// next run (which fetches only the new uid) and by compaction.
TEST(EngineTest, MessagesWithoutGuidAreArchivedUnderTheirSha1) {
  FakeReadService daemon;
  daemon.folders["A"] = {{1, "a1"}, {2, "old", cyrus::kFlagSeen, true},
                         {3, "a3"}, {4, "a1", cyrus::kFlagSeen, true}};
  ::cyrsync::testing::TempDir dir;
  auto stats = SnapshotFrom(daemon, {"A"}, dir.path());
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->messages_added, 3u);  // uid 4 holds the body of uid 1
  EXPECT_EQ(stats->messages_without_guid, 2u);
  EXPECT_EQ(daemon.log, (std::vector<std::string>{"F:A", "M:A:4"}));

  daemon.folders["A"].push_back({5, "new", cyrus::kFlagSeen, true});
  daemon.log.clear();
  stats = SnapshotFrom(daemon, {"A"}, dir.path(), 1);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->messages_added, 1u);
  EXPECT_EQ(daemon.log, (std::vector<std::string>{"F:A", "M:A:1"}));

  auto paths = PathsFor(dir.path(), "alice");
  {
    auto idx = IndexDb::Open(paths.index);
    ASSERT_TRUE(idx.ok());
    auto map = LoadGuidMap(Env::Default(), **idx, paths.archive, "A");
    ASSERT_TRUE(map.ok()) << map.status().ToString();
    EXPECT_EQ(map->uidvalidity, 1700000000u);
    EXPECT_EQ(map->sha1, (std::map<uint32_t, std::string>{
                             {2, Sha1Hex("old")}, {4, Sha1Hex("a1")}, {5, Sha1Hex("new")}}));
  }
  CompactPolicy force{.now = Env::Default()->NowNanos() / 1'000'000'000, .force = true};
  auto compacted = Compact(Env::Default(), paths.archive, paths.index, force);
  ASSERT_TRUE(compacted.ok()) << compacted.status().ToString();
  EXPECT_TRUE(compacted->compacted);

  ::cyrsync::testing::TempDir out;
  RestoreRequest req{paths, "user.alice.A", 0, 0, out.path(), {}};
  auto restored = RestoreToDirectory(Env::Default(), req);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ(restored->missing, 0u);
  EXPECT_EQ(restored->messages, 5u);
  const std::string folder = JoinPath(out.path(), "user/alice/A");
  std::map<std::string, std::string> want = {{"1.", "a1"}, {"2.", "old"}, {"3.", "a3"},
                                             {"4.", "a1"}, {"5.", "new"}};
  for (const auto& [name, body] : want) {
    auto got = ReadFileToString(Env::Default(), JoinPath(folder, name));
    ASSERT_TRUE(got.ok()) << name << ": " << got.status().ToString();
    EXPECT_EQ(*got, body) << name;
  }
  EXPECT_FALSE(Env::Default()->Stat(JoinPath(folder, std::string(kGuidMapFile))).ok());
}

// A body without GUID is still checked against the size its index record gives: a file
// rewritten underfoot aborts the user and leaves the archive's committed runs as they were.
TEST(EngineTest, MessageWithoutGuidOfAnotherSizeIsRefused) {
  FakeReadService daemon;
  daemon.folders["A"] = {{1, "a1"}, {2, "twelve bytes", cyrus::kFlagSeen, true}};
  ::cyrsync::testing::TempDir dir;
  ASSERT_TRUE(SnapshotFrom(daemon, {"A"}, dir.path()).ok());
  auto paths = PathsFor(dir.path(), "alice");
  auto before = ReadFileToString(Env::Default(), paths.archive);
  ASSERT_TRUE(before.ok());

  daemon.folders["A"].push_back({3, "thirteen byte", cyrus::kFlagSeen, true});
  daemon.served_body[3] = "thirteen bytes";
  auto stats = SnapshotFrom(daemon, {"A"}, dir.path(), 1);
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), Code::kAborted) << stats.status().ToString();
  EXPECT_NE(stats.status().message().find("user.alice.A uid 3 is 14 bytes, its index record "
                                          "says 13"),
            std::string::npos)
      << stats.status().ToString();
  // Only an uncommitted tail was added (the next run cuts it); the committed runs are as before.
  auto after = ReadFileToString(Env::Default(), paths.archive);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->substr(0, before->size()), *before);
  {
    auto idx = IndexDb::Open(paths.index);
    ASSERT_TRUE(idx.ok());
    auto runs = (*idx)->Runs();
    ASSERT_TRUE(runs.ok());
    EXPECT_EQ(runs->size(), 1u);
  }

  daemon.served_body.clear();  // the file is whole again: the next run takes it
  stats = SnapshotFrom(daemon, {"A"}, dir.path(), 2);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->messages_added, 1u);
}

// A guid map names its uidvalidity and each uid's SHA-1; anything else is an error that names
// the member and the line.
TEST(GuidMapTest, RoundTripsAndRejectsDamage) {
  GuidMap m{77, {{3, Sha1Hex("x")}, {9, Sha1Hex("y")}}};
  auto back = ParseGuidMap(EncodeGuidMap(m), "a.tar.gz: folders/k/cyrsync.guids");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, m);
  const std::string text = EncodeGuidMap(m);
  for (const std::string& bad :
       {text.substr(0, text.size() - 1), std::string("cyrsync-guids 2\nuidvalidity 1\n"),
        text + "0 " + Sha1Hex("z") + "\n", text + "12 xyz\n", text + "3 " + Sha1Hex("z") + "\n",
        std::string("cyrsync-guids 1\n")}) {
    auto r = ParseGuidMap(bad, "a.tar.gz: folders/k/cyrsync.guids");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kCorruption);
    EXPECT_NE(r.status().message().find("folders/k/cyrsync.guids"), std::string::npos);
    EXPECT_NE(r.status().message().find("line"), std::string::npos);
  }
}

}  // namespace
}  // namespace cyrsync::snapshot
