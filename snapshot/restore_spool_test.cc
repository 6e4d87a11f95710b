#include "snapshot/restore_spool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "snapshot/archive.h"
#include "snapshot/archive_test_util.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::snapshot {
namespace {

using testing::BuildIndexV17;
using ::testing::HasSubstr;
using testing::ReadWhole;
using testing::TestMessage;

std::string FixtureDir() {
  const char* src = std::getenv("CYRSYNC_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/data/cyrus-3.6.1/";
}

std::string Fixture(const std::string& name) {
  return ReadWhole(Env::Default(), FixtureDir() + name);
}

// A cyrus.header: the real file's 115-byte magic followed by body.
std::string Header(const std::string& body) {
  return Fixture("cyrus.header").substr(0, 115) + body;
}

cyrus::ImapdConf Conf(const std::string& root, bool legacy) {
  std::string text = "configdirectory: " + root + "/conf\npartition-default: " + root +
                     "/spool\nsievedir: " + root + "/sieve\nhashimapspool: yes\n" +
                     "mailbox_legacy_dirs: " + (legacy ? "yes" : "no") + "\n";
  auto c = cyrus::ParseImapdConf(text, root + "/imapd.conf");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : cyrus::ImapdConf{};
}

TEST(BuildSpoolFolderTest, RealHeaderAndIndex) {
  auto conf = Conf("/x", false);
  auto f = BuildSpoolFolder("user.alice", "850mimqavd42cf5ohk189ozw", Fixture("cyrus.header"),
                            Fixture("cyrus.index"), conf);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->mb.intname, "user.alice");
  EXPECT_EQ(f->mb.uniqueid, "850mimqavd42cf5ohk189ozw");
  EXPECT_EQ(f->mb.mbtype, "e");
  EXPECT_FALSE(f->mb.legacy_dirs);
  EXPECT_EQ(f->mb.partition, "default");
  EXPECT_EQ(f->mb.acl, "alice\tlrswipkxtecdan\t");
  EXPECT_EQ(f->mb.uidvalidity, 1795459061u);
  EXPECT_EQ(f->createdmodseq, 1u);
  EXPECT_EQ(f->foldermodseq, 10u);
}

TEST(BuildSpoolFolderTest, HeaderTypeDecidesTheLayout) {
  std::string index = Fixture("cyrus.index");
  auto uuid_conf = Conf("/x", false);
  auto legacy_conf = Conf("/x", true);
  auto f = BuildSpoolFolder("user.a.#sieve", "id1", Header("%(T fl N user.a.#sieve I id1)\n"),
                            index, uuid_conf);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->mb.mbtype, "fl");
  EXPECT_TRUE(f->mb.legacy_dirs);
  f = BuildSpoolFolder("user.a", "id2", Header("%(T e N user.a I id2)\n"), index, legacy_conf);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->mb.mbtype, "e");
  EXPECT_FALSE(f->mb.legacy_dirs);
}

TEST(BuildSpoolFolderTest, TextHeaderFollowsTheTarget) {
  std::string index = Fixture("cyrus.index");
  std::string text = Header("user.bob\tbobid\n$Label1 \nbob\tlrswipkxtecda\tanyone\tp\t\n");
  auto f = BuildSpoolFolder("user.bob", "user.bob", text, index, Conf("/x", true));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->mb.uniqueid, "bobid");  // the key was the name: the header's uniqueid
  EXPECT_EQ(f->mb.mbtype, "el");
  EXPECT_EQ(f->mb.acl, "bob\tlrswipkxtecda\tanyone\tp\t");
  f = BuildSpoolFolder("user.bob", "user.bob", text, index, Conf("/x", false));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->mb.mbtype, "e");
  auto none =
      BuildSpoolFolder("user.bob", "user.bob", Header("user.bob\n\n\n"), index, Conf("/x", false));
  EXPECT_EQ(none.status().code(), Code::kFailedPrecondition);
}

TEST(MailboxesJsonTest, CtlMboxlistDumpForm) {
  SpoolFolder f;
  f.mb.intname = "user.alice.Work";
  f.mb.uniqueid = "s539a8w6i0tkcvxyihm7ijb9";
  f.mb.mbtype = "e";
  f.mb.partition = "default";
  f.mb.acl = "alice\tlrswipkxtecdan\tbob\tlrs\tanyone\tp\t";
  f.mb.uidvalidity = 1795463295;
  f.createdmodseq = 1;
  f.foldermodseq = 7;
  f.mtime = 1795463304;
  std::string json = MailboxesJson({f});
  // Key order of `ctl_mboxlist -d` (3.6.1), every scalar a string, ACL in its original order.
  EXPECT_THAT(json, HasSubstr(R"("name": "user.alice.Work",)"));
  auto j = nlohmann::ordered_json::parse(json);
  const auto& e = j.at("user.alice.Work");
  std::vector<std::string> keys;
  for (const auto& [k, v] : e.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"name", "mtime", "uidvalidity", "createdmodseq",
                                            "foldermodseq", "mbtype", "partition", "acl",
                                            "uniqueid", "name_history"}));
  EXPECT_EQ(e.at("uidvalidity"), "1795463295");
  EXPECT_EQ(e.at("createdmodseq"), "1");
  EXPECT_EQ(e.at("foldermodseq"), "7");
  EXPECT_EQ(e.at("mtime"), "1795463304");
  EXPECT_EQ(e.at("acl").dump(), R"({"alice":"lrswipkxtecdan","bob":"lrs","anyone":"p"})");
  EXPECT_TRUE(e.at("name_history").is_array());
}

// An archive with alice's INBOX and Sent (sharing one message), her seen/sub files and sieve.
class RestoreSpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto idx = OpenIndexForArchive(Env::Default(), paths_.archive, paths_.index);
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    auto w = ArchiveWriter::BeginRun(Env::Default(), paths_.archive, idx->get(),
                                     {0, 1700000000, 0, "test", "alice"});
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    std::vector<TestMessage> inbox = {{1, "one\r\n"}, {2, "two\r\n"}};
    std::vector<TestMessage> sent = {{7, "two\r\n"}};
    AddFolder(w->get(), "user.alice", "ibx-1", inbox);
    AddFolder(w->get(), "user.alice.Sent", "snt-2", sent);
    for (const auto& m : inbox) {
      ASSERT_TRUE((*w)->AddFile("files/" + Sha1Hex(m.body), m.body, 1).ok());
    }
    ASSERT_TRUE((*w)->AddFile("user/seen", "seen-bytes", 1).ok());
    ASSERT_TRUE((*w)->AddFile("user/sub", "sub-bytes", 1).ok());
    ASSERT_TRUE((*w)->AddFile("user/quota", "quota-bytes", 1).ok());
    ASSERT_TRUE((*w)->AddFile("sieve/main.bc", "bytecode", 1).ok());
    ASSERT_TRUE((*w)->AddSymlink("sieve/defaultbc", "main.bc", 1).ok());
    ASSERT_TRUE((*w)->Commit().ok());
  }

  void AddFolder(ArchiveWriter* w, const std::string& name, const std::string& id,
                 const std::vector<TestMessage>& msgs) {
    std::string header =
        Header("%(T " + type_ + " N " + name + " I " + id + " A %(alice lrswipkxtecdan))\n");
    ASSERT_TRUE(w->AddFile("folders/" + id + "/cyrus.header", header, 1).ok());
    ASSERT_TRUE(w->AddFile("folders/" + id + "/cyrus.index", BuildIndexV17(msgs), 1).ok());
    ASSERT_TRUE(w->AddSymlink(LinkName(name), id, 1).ok());
  }

  Result<RestoreStats> Restore(const cyrus::ImapdConf& conf, bool overwrite = false) {
    SpoolRestoreRequest req;
    req.paths = paths_;
    req.overwrite = overwrite;
    return RestoreIntoSpool(Env::Default(), req, conf, &json_);
  }

  std::string T(const std::string& rel) const { return target_.Sub(rel); }
  bool Exists(const std::string& rel) const { return Env::Default()->Stat(T(rel)).ok(); }

  std::string type_ = "e";
  cyrsync::testing::TempDir dir_, target_;
  ArchivePaths paths_ = PathsFor(dir_.path(), "alice");
  std::string json_;
};

TEST_F(RestoreSpoolTest, UuidLayout) {
  auto r = Restore(Conf(target_.path(), false));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->folders, 2u);
  EXPECT_EQ(r->messages, 3u);
  EXPECT_EQ(r->missing, 0u);
  EXPECT_EQ(ReadWhole(Env::Default(), T("spool/uuid/i/b/ibx-1/1.")), "one\r\n");
  EXPECT_TRUE(Exists("spool/uuid/i/b/ibx-1/cyrus.header"));
  EXPECT_TRUE(Exists("spool/uuid/i/b/ibx-1/cyrus.index"));
  auto sent = Env::Default()->Stat(T("spool/uuid/s/n/snt-2/7."));
  ASSERT_TRUE(sent.ok());
  EXPECT_EQ(sent->nlink, 2u);  // the same GUID as INBOX's uid 2: hard-linked
  EXPECT_EQ(ReadWhole(Env::Default(), T("conf/user/uuid/i/b/ibx-1/seen.db")), "seen-bytes");
  EXPECT_EQ(ReadWhole(Env::Default(), T("conf/user/uuid/i/b/ibx-1/sub.db")), "sub-bytes");
  EXPECT_EQ(ReadWhole(Env::Default(), T("conf/quota/a/user.alice")), "quota-bytes");
  EXPECT_FALSE(r->quota_not_restored);
  EXPECT_EQ(ReadWhole(Env::Default(), T("sieve/uuid/i/b/ibx-1/main.bc")), "bytecode");
  auto link = Env::Default()->ReadLink(T("sieve/uuid/i/b/ibx-1/defaultbc"));
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(*link, "main.bc");
  auto j = nlohmann::json::parse(json_);
  EXPECT_EQ(j.size(), 2u);
  EXPECT_EQ(j.at("user.alice.Sent").at("uniqueid"), "snt-2");
  EXPECT_EQ(j.at("user.alice").at("mbtype"), "e");
}

TEST_F(RestoreSpoolTest, HeaderLayoutWinsOverTheTargetSetting) {
  // The archived headers say "e" (uuid layout): a legacy_dirs target still gets uuid paths.
  auto r = Restore(Conf(target_.path(), true));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(Exists("spool/uuid/i/b/ibx-1/1."));
  EXPECT_FALSE(Exists("spool/a/user/alice/1."));
}

class RestoreSpoolLegacyTest : public RestoreSpoolTest {
 protected:
  RestoreSpoolLegacyTest() { type_ = "el"; }
};

TEST_F(RestoreSpoolLegacyTest, ByNameLayout) {
  auto r = Restore(Conf(target_.path(), false));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ReadWhole(Env::Default(), T("spool/a/user/alice/1.")), "one\r\n");
  EXPECT_TRUE(Exists("spool/a/user/alice/cyrus.index"));
  EXPECT_TRUE(Exists("spool/a/user/alice/Sent/7."));
  EXPECT_EQ(ReadWhole(Env::Default(), T("conf/user/a/alice.seen")), "seen-bytes");
  EXPECT_EQ(ReadWhole(Env::Default(), T("conf/user/a/alice.sub")), "sub-bytes");
  EXPECT_EQ(ReadWhole(Env::Default(), T("conf/quota/a/user.alice")), "quota-bytes");
  EXPECT_TRUE(Exists("sieve/a/alice/main.bc"));
  EXPECT_EQ(nlohmann::json::parse(json_).at("user.alice.Sent").at("mbtype"), "el");
}

TEST_F(RestoreSpoolTest, RefusesAnOccupiedTargetUnlessOverwrite) {
  auto conf = Conf(target_.path(), false);
  ASSERT_TRUE(Restore(conf).ok());
  auto again = Restore(conf);
  EXPECT_EQ(again.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(again.status().ToString(), HasSubstr("ibx-1"));
  auto over = Restore(conf, true);
  ASSERT_TRUE(over.ok()) << over.status().ToString();
  EXPECT_EQ(over->messages, 3u);
}

TEST_F(RestoreSpoolTest, RejectsWhatItCannotDo) {
  auto conf = Conf(target_.path(), false);
  SpoolRestoreRequest req;
  req.paths = paths_;
  req.folder = "user.alice";
  req.uid = 1;
  EXPECT_EQ(RestoreIntoSpool(Env::Default(), req, conf, &json_).status().code(),
            Code::kInvalidArgument);
  req.uid = 0;
  req.folder = "user.alice.Nope";
  EXPECT_EQ(RestoreIntoSpool(Env::Default(), req, conf, &json_).status().code(), Code::kNotFound);
  conf.defaultpartition = "other";
  EXPECT_EQ(Restore(conf).status().code(), Code::kInvalidArgument);
}

// A target that keeps quotas in a database gets everything but the quota root file, and the
// restore says so.
TEST_F(RestoreSpoolTest, QuotaRootNeedsAQuotalegacyTarget) {
  auto conf = Conf(target_.path(), false);
  conf.quota_db = "twoskip";
  auto r = Restore(conf);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->quota_not_restored);
  EXPECT_FALSE(Exists("conf/quota/a/user.alice"));
  EXPECT_EQ(ReadWhole(Env::Default(), T("conf/user/uuid/i/b/ibx-1/seen.db")), "seen-bytes");
}

TEST_F(RestoreSpoolTest, OneFolderLeavesTheUserFilesAlone) {
  SpoolRestoreRequest req;
  req.paths = paths_;
  req.folder = "user.alice.Sent";
  auto r = RestoreIntoSpool(Env::Default(), req, Conf(target_.path(), false), &json_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->folders, 1u);
  EXPECT_EQ(ReadWhole(Env::Default(), T("spool/uuid/s/n/snt-2/7.")), "two\r\n");
  EXPECT_FALSE(Exists("conf/user/uuid/i/b/ibx-1/seen.db"));
  EXPECT_FALSE(Exists("spool/uuid/i/b/ibx-1/1."));
}

}  // namespace
}  // namespace cyrsync::snapshot
