#include "snapshot/engine.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "snapshot/archive_test_util.h"
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
  std::vector<std::string> log;

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
    const std::vector<std::pair<std::string, std::string>> files = {
        {"cyrus.header", "header of " + key}, {"cyrus.index", BuildIndexV17(it->second)}};
    for (const auto& [name, bytes] : files) {
      RETURN_IF_ERROR(t.Send(protocol::kMetaFile, protocol::Encode(protocol::StateFile{name})));
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
      RETURN_IF_ERROR(protocol::SendBody(t, m->body));
    }
    return Status::Ok();
  }
};

protocol::FolderState Folder(const std::string& key) {
  protocol::FolderState fs{key, "user.alice." + key, "e", {}};
  fs.files.push_back({"cyrus.header", {}, protocol::EntryKind::kFile, {1, 2, 3, 4}, ""});
  fs.files.push_back({"cyrus.index", {}, protocol::EntryKind::kFile, {5, 6, 7, 8}, ""});
  return fs;
}

// One snapshot of alice's folders (keys) from daemon into an archive in dir.
Result<SnapshotStats> SnapshotFrom(FakeReadService& daemon, const std::vector<std::string>& keys,
                                   const std::string& dir) {
  auto [client, server] = protocol::MakePipePair();
  std::thread serving([&daemon, s = server.get()] { daemon.Serve(*s); });
  protocol::UserState state;
  for (const auto& k : keys) state.folders.push_back(Folder(k));
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
  EXPECT_EQ(stats->messages_added, 6u);
  EXPECT_EQ(stats->folders_fetched, 3u);
  EXPECT_EQ(stats->messages_without_guid, 1u);  // B was read twice, its record counted once
  EXPECT_EQ(daemon.log, (std::vector<std::string>{"F:A", "M:A:3", "F:B", "M:B:2", "F:C", "F:B",
                                                  "M:B:1", "M:C:2"}));

  auto paths = PathsFor(dir.path(), "alice");
  auto idx = IndexDb::Open(paths.index);
  ASSERT_TRUE(idx.ok());
  for (const char* body : {"a1", "a3", "a4", "b5", "c7", "c8"}) {
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

// A record with no GUID cannot be archived under files/<sha1>: it is not fetched, and counted so
// that the operator is told.
TEST(EngineTest, MessagesWithoutGuidAreCountedNotFetched) {
  FakeReadService daemon;
  daemon.folders["A"] = {{1, "a1"}, {2, "old", cyrus::kFlagSeen, true}, {3, "a3"}};
  ::cyrsync::testing::TempDir dir;
  auto stats = SnapshotFrom(daemon, {"A"}, dir.path());
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->messages_added, 2u);
  EXPECT_EQ(stats->messages_without_guid, 1u);
  EXPECT_EQ(daemon.log, (std::vector<std::string>{"F:A", "M:A:2"}));
}

}  // namespace
}  // namespace cyrsync::snapshot
