// Restore sessions: refusals before anything is written, and a refused restore leaves the disk
// as it was. (The whole path through ctl_mboxlist and reconstruct runs against a real Cyrus in
// tests/integration/test_snapshot.py.)
#include <gmock/gmock.h>

#include <functional>

#include "cyrus/cyrusdb_test_util.h"
#include "replica/session_test_util.h"

namespace cyrsync::replica::test {
namespace {

using cyrus::testing::ReadFixture;

class RestoreSessionTest : public ReplicaFixture {
 protected:
  void SetUp() override {
    ReplicaFixture::SetUp();
    // A 3.6.1 mailboxes.db (uuid layout) listing user.alice, user.alice.Sent, user.bob, ...
    WriteFile(Conf("mailboxes.db"), ReadFixture("mboxlist-3.6.1-uuid/mailboxes.db"));
    opts_.allow_restore = true;
    opts_.tools.bin_dir = Outside("no-tools");  // never reached by these tests
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }

  Peer& Begin(const std::string& name) {
    Peer& p = StartSession();
    EXPECT_TRUE(DoHello(p, "restore").ok());
    p.Send(protocol::kRestoreBegin, protocol::EncodeString(name));
    return p;
  }

  void SendMeta(Peer& p, const std::string& name, std::string_view body) {
    p.Send(protocol::kMetaFile, protocol::Encode(protocol::StateFile{name}));
    p.SendBody(body);
  }

  std::string Header() {
    return ReadFixture("cyrus-3.6.1/cyrus.header");
  }
};

TEST_F(RestoreSessionTest, RefusedWithoutAllowRestore) {
  opts_.allow_restore = false;
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  Peer& p = StartSession();
  auto ok = DoHello(p, "restore");
  ASSERT_FALSE(ok.ok());
  EXPECT_THAT(ok.status().message(), ::testing::HasSubstr("--allow-restore"));
}

TEST_F(RestoreSessionTest, BadOrTakenNamesAreRefusedAndNothingIsWritten) {
  const Snapshot before = Snap();
  for (const std::string& name :
       {std::string("user.alice.Sent"), std::string("user.alice"), std::string("user.nobody.X"),
        std::string("shared.news.Old"), std::string("user.alice.a/b"),
        std::string("user.alice..x"), std::string("user.alice.x."), std::string("user.alice.\x01"),
        std::string("")}) {
    Peer& p = Begin(name);
    Status st = p.RecvOk();
    EXPECT_FALSE(st.ok()) << "accepted " << name;
    (void)EndSession();
  }
  EXPECT_EQ(DiffSnapshots(before, Snap()), "");
}

TEST_F(RestoreSessionTest, ProtocolViolationsEndTheRestoreWithoutTrace) {
  const TestRecord rec{7, "Subject: x\r\n\r\nbody\r\n"};
  const std::string index = BuildIndexV17({rec});
  struct Case {
    const char* name;
    const char* error;  // part of the ERROR the daemon sends
    std::function<void(Peer&)> send;
  } cases[] = {
      {"message before the index", "needs cyrus.header and cyrus.index",
       [&](Peer& p) {
         p.Send(protocol::kMessagePut, protocol::Encode(protocol::MessagePut{7, false, 0}));
         p.SendBody(rec.body);
       }},
      {"unknown metadata file", "no metadata file cyrus.expunge", [&](Peer& p) { SendMeta(p, "cyrus.expunge", index); }},
      {"metadata path", "no metadata file ../cyrus.index", [&](Peer& p) { SendMeta(p, "../cyrus.index", index); }},
      {"uid not in the index", "message 8 is not in the index",
       [&](Peer& p) {
         SendMeta(p, "cyrus.header", Header());
         SendMeta(p, "cyrus.index", index);
         p.Send(protocol::kMessagePut, protocol::Encode(protocol::MessagePut{8, false, 0}));
         p.SendBody(rec.body);
       }},
      {"body not matching the GUID", "does not match its GUID",
       [&](Peer& p) {
         SendMeta(p, "cyrus.header", Header());
         SendMeta(p, "cyrus.index", index);
         p.Send(protocol::kMessagePut, protocol::Encode(protocol::MessagePut{7, false, 0}));
         p.SendBody("something else");
       }},
      {"sync request inside", "unexpected type 10", [&](Peer& p) { p.Send(protocol::kGetManifest, ""); }},
  };
  const Snapshot before = Snap();
  for (const auto& c : cases) {
    Peer& p = Begin("user.alice.Restored");
    ASSERT_TRUE(p.RecvOk().ok()) << c.name;
    c.send(p);
    p.Send(protocol::kFolderCommit, "");
    auto f = p.Recv();
    ASSERT_TRUE(f.ok() && f->type == protocol::kError) << c.name;
    EXPECT_THAT(protocol::StatusFromError(f->payload).message(), ::testing::HasSubstr(c.error))
        << c.name;
    EXPECT_FALSE(EndSession().ok()) << c.name;
    EXPECT_EQ(DiffSnapshots(before, Snap()), "") << c.name;
  }
}

}  // namespace
}  // namespace cyrsync::replica::test
