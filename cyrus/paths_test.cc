#include "cyrus/paths.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "cyrus/cyrusdb_test_util.h"

namespace cyrsync::cyrus {
namespace {

using testing::FixturePath;
using testing::ReadFixture;

ImapdConf Conf(std::string_view extra) {
  auto r = ParseImapdConf(
      "configdirectory: /conf\npartition-default: /spool\nsievedir: /sieve\n" + std::string(extra),
      "test.conf");
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  return r.ok() ? *r : ImapdConf{};
}

MailboxEntry Mb(std::string intname, std::string uniqueid, bool legacy,
                std::string partition = "default") {
  MailboxEntry e;
  e.intname = std::move(intname);
  e.uniqueid = std::move(uniqueid);
  e.partition = std::move(partition);
  e.legacy_dirs = legacy;
  e.mbtype = legacy ? "el" : "e";
  return e;
}

std::string Abs(const ImapdConf& c, const RootedPath& p) {
  auto r = Resolve(c, p);
  EXPECT_TRUE(r.ok()) << p.root << " " << p.rel;
  return r.ok() ? *r : "";
}

TEST(Paths, DirHashChar) {
  EXPECT_EQ(DirHashChar("alice", false), 'a');
  EXPECT_EQ(DirHashChar("Bob", false), 'b');
  EXPECT_EQ(DirHashChar("1abc", false), 'q');
  EXPECT_EQ(DirHashChar("*U*fred", false), 'q');
  EXPECT_EQ(DirHashChar("", false), 'q');
  EXPECT_EQ(DirHashChar("\xc3\xa9t\xc3\xa9", false), 'q');
  // Values observed in a real 3.6.1 spool with fulldirhash: yes (tests/data/*-vdom).
  EXPECT_EQ(DirHashChar("example.com", true), 'O');
  EXPECT_EQ(DirHashChar("example", true), 'O');
  EXPECT_EQ(DirHashChar("user", true), 'C');
  EXPECT_EQ(DirHashChar("alice", true), 'L');
  EXPECT_EQ(DirHashChar("bob", true), 'E');
  EXPECT_EQ(DirHashChar("shared", true), 'T');
  EXPECT_EQ(DirHashChar("*U*", true), 'D');
  EXPECT_EQ(DirHashChar("", true), 'A');
}

TEST(Paths, LegacyLayout) {
  ImapdConf plain = Conf("");
  ImapdConf hashed = Conf("hashimapspool: yes\n");
  MailboxEntry sent = Mb("user.alice.Sent", "u1", true);
  EXPECT_EQ(DataDir(plain, sent), (RootedPath{"partition-default", "user/alice/Sent"}));
  EXPECT_EQ(DataDir(hashed, sent), (RootedPath{"partition-default", "a/user/alice/Sent"}));
  EXPECT_EQ(Abs(hashed, DataDir(hashed, sent)), "/spool/a/user/alice/Sent");
  EXPECT_EQ(DataDir(hashed, Mb("shared", "s", true)).rel, "s/shared");
  EXPECT_EQ(DataDir(hashed, Mb("shared.news", "s", true)).rel, "n/shared/news");
  EXPECT_EQ(DataDir(hashed, Mb("user.john^doe.v1^2", "s", true)).rel, "j/user/john^doe/v1^2");
  EXPECT_EQ(DataDir(hashed, Mb("DELETED.user.bob.Temp.6B0487EA", "s", true)).rel,
            "u/DELETED/user/bob/Temp/6B0487EA");
  EXPECT_EQ(DataDir(hashed, Mb("example.com!user.fred.Sent", "s", true)).rel,
            "domain/e/example.com/f/user/fred/Sent");
  EXPECT_EQ(DataDir(plain, Mb("example.com!user.fred", "s", true)).rel,
            "domain/example.com/user/fred");
  ImapdConf full = Conf("hashimapspool: yes\nfulldirhash: yes\n");
  EXPECT_EQ(DataDir(full, Mb("example.com!user.alice", "s", true)).rel,
            "domain/O/example.com/L/user/alice");
  // A mailbox without a uniqueid cannot use the uuid layout.
  EXPECT_EQ(DataDir(hashed, Mb("user.old", "", false)).rel, "o/user/old");
}

TEST(Paths, UuidLayoutIgnoresNameAndHashing) {
  ImapdConf c = Conf("hashimapspool: yes\nfulldirhash: yes\n");
  MailboxEntry mb = Mb("example.com!user.alice.Sent", "r0yfpwh7zqd36rv50t4qbd5e", false);
  EXPECT_EQ(DataDir(c, mb), (RootedPath{"partition-default", "uuid/r/0/r0yfpwh7zqd36rv50t4qbd5e"}));
  EXPECT_EQ(MessagePath(DataDir(c, mb), 42).rel, "uuid/r/0/r0yfpwh7zqd36rv50t4qbd5e/42.");
  EXPECT_EQ(MetaPath(c, mb, MetaFile::kIndex).rel, "uuid/r/0/r0yfpwh7zqd36rv50t4qbd5e/cyrus.index");
}

TEST(Paths, MetapartitionsAndMetadirOverrides) {
  ImapdConf c = Conf(
      "metapartition-default: /meta\n"
      "metapartition_files: header index expunge annotations\n"
      "metadir-header-default: /fasthdr\n"
      "metadir-index-default: /fastidx\n"
      "metadir-cache-default: /fastcache\n");
  MailboxEntry mb = Mb("user.a", "u1", true);
  auto root = [&](MetaFile f) { return MetaPath(c, mb, f).root; };
  EXPECT_EQ(root(MetaFile::kHeader), "metadir-header-default");
  EXPECT_EQ(root(MetaFile::kIndex), "metadir-index-default");
  EXPECT_EQ(root(MetaFile::kAnnotations), "metadir-index-default");  // Cyrus reuses the key
  EXPECT_EQ(root(MetaFile::kCache), "metadir-cache-default");
  EXPECT_EQ(root(MetaFile::kExpunge), "metapartition-default");  // no metadir key
  EXPECT_EQ(root(MetaFile::kSquat), "partition-default");        // not in the file list
  EXPECT_EQ(root(MetaFile::kDav), "partition-default");
  EXPECT_EQ(Abs(c, MetaPath(c, mb, MetaFile::kExpunge)), "/meta/user/a/cyrus.expunge");
  EXPECT_EQ(Abs(c, MetaPath(c, mb, MetaFile::kCache)), "/fastcache/user/a/cyrus.cache");
  // metapartition_files without a metapartition for this partition: data partition.
  MailboxEntry other = Mb("user.b", "u2", true, "p2");
  EXPECT_EQ(MetaPath(c, other, MetaFile::kHeader).root, "partition-p2");
}

TEST(Paths, ArchiveDir) {
  MailboxEntry mb = Mb("user.a", "u1", true);
  ImapdConf off = Conf("archivepartition-default: /arch\n");
  EXPECT_EQ(ArchiveDir(off, mb), DataDir(off, mb));
  ImapdConf on = Conf("archivepartition-default: /arch\narchive_enabled: yes\n");
  EXPECT_EQ(ArchiveDir(on, mb), (RootedPath{"archivepartition-default", "user/a"}));
  EXPECT_EQ(ArchiveDir(on, Mb("user.b", "u2", true, "other")).root, "partition-other");
}

TEST(Paths, UserFiles) {
  ImapdConf c = Conf("hashimapspool: no\n");
  MailboxEntry legacy_inbox = Mb("user.alice", "u1", true);
  MailboxEntry uuid_inbox = Mb("user.alice", "r0yfpwh7", false);
  EXPECT_EQ(UserFile(c, "alice", nullptr, "seen"),
            (RootedPath{"configdirectory", "user/a/alice.seen"}));
  EXPECT_EQ(UserFile(c, "alice", &legacy_inbox, "sub").rel, "user/a/alice.sub");
  EXPECT_EQ(UserFile(c, "alice", &uuid_inbox, "sub").rel, "user/uuid/r/0/r0yfpwh7/sub.db");
  EXPECT_EQ(UserFile(c, "john.doe", nullptr, "seen").rel, "user/j/john.doe.seen");
  EXPECT_EQ(UserFile(c, "bob@ex.org", nullptr, "seen").rel, "domain/e/ex.org/user/b/bob.seen");
  EXPECT_EQ(UserFile(c, "", nullptr, "seen").rel, "shared.seen");
  ImapdConf dd = Conf("defaultdomain: ex.org\n");
  EXPECT_EQ(UserFile(dd, "bob@ex.org", nullptr, "seen").rel, "user/b/bob.seen");
}

TEST(Paths, SieveDirs) {
  ImapdConf off = Conf("");
  ImapdConf vd = Conf("virtdomains: userid\n");
  MailboxEntry uuid_inbox = Mb("user.alice", "r0yfpwh7", false);
  EXPECT_EQ(UserSieveDir(off, "alice", nullptr), (RootedPath{"sievedir", "a/alice"}));
  EXPECT_EQ(UserSieveDir(off, "alice", &uuid_inbox).rel, "uuid/r/0/r0yfpwh7");
  EXPECT_EQ(UserSieveDir(off, "bob@ex.org", nullptr).rel, "b/bob@ex.org");
  EXPECT_EQ(UserSieveDir(vd, "bob@ex.org", nullptr).rel, "domain/e/ex.org/b/bob");
  EXPECT_EQ(UserSieveDir(off, "", nullptr).rel, "global");
}

TEST(Paths, QuotaFiles) {
  ImapdConf off = Conf("");
  ImapdConf vd = Conf("virtdomains: userid\n");
  EXPECT_EQ(QuotaFile(off, "user.alice"), (RootedPath{"configdirectory", "quota/a/user.alice"}));
  EXPECT_EQ(QuotaFile(off, "shared"), (RootedPath{"configdirectory", "quota/s/shared"}));
  EXPECT_EQ(QuotaFile(vd, "ex.org!user.bob").rel, "domain/e/ex.org/quota/b/user.bob");
  EXPECT_EQ(QuotaFile(vd, "ex.org!").rel, "domain/e/ex.org/quota/root");
}

TEST(Paths, LockPaths) {
  ImapdConf c = Conf("hashimapspool: yes\nmboxname_lockpath: /run/lock\n");
  EXPECT_EQ(UserNamespaceLockPath(c, "fred"), "/run/lock/q/*U*fred.lock");
  EXPECT_EQ(UserNamespaceLockPath(c, "john.doe"), "/run/lock/q/*U*john^doe.lock");
  EXPECT_EQ(MailboxNameLockPath(c, Mb("user.fred.Sent", "x", true)),
            "/run/lock/f/user/fred/Sent.lock");
  EXPECT_EQ(MailboxNameLockPath(c, Mb("user.fred.Sent", "a8crckb9", false)),
            "/run/lock/a/a8crckb9.lock");
  ImapdConf dflt = Conf("");
  EXPECT_EQ(UserNamespaceLockPath(dflt, "fred"), "/conf/lock/*U*fred.lock");
}

TEST(Paths, FileNameClassifiers) {
  EXPECT_TRUE(IsMessageFileName("1."));
  EXPECT_TRUE(IsMessageFileName("4294967295."));
  EXPECT_FALSE(IsMessageFileName("."));
  EXPECT_FALSE(IsMessageFileName("1"));
  EXPECT_FALSE(IsMessageFileName("1.NEW"));
  EXPECT_FALSE(IsMessageFileName("a1."));
  EXPECT_FALSE(IsMessageFileName("1.."));
  EXPECT_FALSE(IsMessageFileName(""));
  EXPECT_TRUE(IsMetaFileName("cyrus.index"));
  EXPECT_TRUE(IsMetaFileName("cyrus.index.NEW"));
  EXPECT_FALSE(IsMetaFileName("cyrus."));
  EXPECT_FALSE(IsMetaFileName("1."));
  for (MetaFile f : AllMetaFiles()) EXPECT_TRUE(IsMetaFileName(MetaFileName(f)));
  EXPECT_EQ(AllMetaFiles().size(), 7u);
}

TEST(Paths, ResolveUnknownRoot) {
  ImapdConf c = Conf("");
  EXPECT_EQ(Resolve(c, {"partition-nope", "x"}).error().code(), Code::kNotFound);
  EXPECT_EQ(*Resolve(c, {"configdirectory", "user/a/alice.seen"}), "/conf/user/a/alice.seen");
}

// ---- against what a real Cyrus 3.6.1 printed (`mbpath -j`, lock directory listing)

struct Fixture {
  ImapdConf conf;
  std::map<std::string, MailboxEntry> by_name;
};

Fixture LoadFixture(const std::string& variant) {
  Fixture f;
  std::string dir = "mboxlist-3.6.1-" + variant;
  auto conf = LoadImapdConf(Env::Default(), FixturePath(dir + "/imapd.conf"));
  EXPECT_TRUE(conf.ok());
  if (!conf.ok()) return f;
  f.conf = *conf;
  ImapdConf load = f.conf;
  load.mboxlist_db_path = FixturePath(dir + "/mailboxes.db");
  auto entries = LoadMailboxList(Env::Default(), load);
  EXPECT_TRUE(entries.ok()) << entries.error().ToString();
  if (entries.ok()) {
    for (const auto& e : *entries) f.by_name[e.intname] = e;
  }
  return f;
}

// mbpath.txt: "== <name>" lines, each followed by one JSON object.
std::vector<nlohmann::json> ParseMbpath(std::string_view text) {
  std::vector<nlohmann::json> out;
  size_t pos = 0;
  while ((pos = text.find("== ", pos)) != std::string_view::npos) {
    size_t start = text.find('\n', pos) + 1;
    size_t next = text.find("\n== ", start);
    out.push_back(nlohmann::json::parse(text.substr(
        start, next == std::string_view::npos ? std::string_view::npos : next - start + 1)));
    pos = start;
  }
  return out;
}

const MailboxEntry* InboxOf(const Fixture& f, const MailboxEntry& mb) {
  std::string owner = mb.Owner();
  std::string local = owner.substr(0, owner.find('@'));
  for (char& ch : local) {
    if (ch == '.') ch = '^';
  }
  std::string domain = mb.Domain();
  std::string inbox = (domain.empty() ? "" : domain + "!") + "user." + local;
  auto it = f.by_name.find(inbox);
  return it == f.by_name.end() ? nullptr : &it->second;
}

void CheckUserPaths(const Fixture& f, const MailboxEntry& mb, const nlohmann::json& user) {
  const MailboxEntry* inbox = InboxOf(f, mb);
  ASSERT_NE(inbox, nullptr);
  for (const char* sfx : {"seen", "sub", "counters", "conversations", "dav", "xapianactive"}) {
    EXPECT_EQ(Abs(f.conf, UserFile(f.conf, mb.Owner(), inbox, sfx)),
              user.at(sfx).get<std::string>())
        << sfx;
  }
  EXPECT_EQ(Abs(f.conf, UserSieveDir(f.conf, mb.Owner(), inbox)),
            user.at("sieve").get<std::string>());
}

void CheckMbpath(const std::string& variant) {
  SCOPED_TRACE(variant);
  Fixture f = LoadFixture(variant);
  auto all = ParseMbpath(ReadFixture("mboxlist-3.6.1-" + variant + "/mbpath.txt"));
  ASSERT_GE(all.size(), 9u);
  for (const auto& j : all) {
    std::string name = j.at("mbname").at("intname").get<std::string>();
    SCOPED_TRACE(name);
    ASSERT_TRUE(f.by_name.contains(name));
    const MailboxEntry& mb = f.by_name.at(name);
    ASSERT_TRUE(mb.IsReal());
    EXPECT_EQ(Abs(f.conf, DataDir(f.conf, mb)), j.at("data").get<std::string>());
    EXPECT_EQ(Abs(f.conf, ArchiveDir(f.conf, mb)), j.at("archive").get<std::string>());
    std::string meta = j.at("meta").get<std::string>();
    EXPECT_EQ(Abs(f.conf, MetaPath(f.conf, mb, MetaFile::kHeader)), meta + "/cyrus.header");
    EXPECT_EQ(Abs(f.conf, MetaPath(f.conf, mb, MetaFile::kIndex)), meta + "/cyrus.index");
    if (j.contains("user")) {
      EXPECT_EQ(mb.Owner(), j.at("mbname").at("userid").get<std::string>());
      CheckUserPaths(f, mb, j.at("user"));
    }
  }
}

TEST(PathsFixture, UuidLayoutMatchesMbpath) { CheckMbpath("uuid"); }
TEST(PathsFixture, LegacyLayoutWithMetaAndArchiveMatchesMbpath) { CheckMbpath("legacy"); }
TEST(PathsFixture, VirtdomainsFulldirhashMatchesMbpath) { CheckMbpath("vdom"); }

TEST(PathsFixture, LegacyCacheStaysOnDataPartition) {
  Fixture f = LoadFixture("legacy");
  const MailboxEntry& mb = f.by_name.at("user.alice.Sent");
  // metapartition_files is "header index annotations": cache is not on the metapartition.
  EXPECT_EQ(Abs(f.conf, MetaPath(f.conf, mb, MetaFile::kCache)),
            "/srv/cyrfx/spool/a/user/alice/Sent/cyrus.cache");
  EXPECT_EQ(Abs(f.conf, MetaPath(f.conf, mb, MetaFile::kAnnotations)),
            "/srv/cyrfx/meta/a/user/alice/Sent/cyrus.annotations");
}

// Every lock file Cyrus created while it ran is a name lock of a mailboxes.db entry, a user
// namespace lock, or the global "*U*" lock, and every real mailbox's lock is among them.
void CheckLocks(const std::string& variant) {
  SCOPED_TRACE(variant);
  Fixture f = LoadFixture(variant);
  std::set<std::string> seen;
  const std::string listing = ReadFixture("mboxlist-3.6.1-" + variant + "/locks.txt");
  std::string_view text = listing;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    seen.insert(JoinPath(f.conf.lockpath, text.substr(0, eol)));
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
  }
  std::set<std::string> computed = {UserNamespaceLockPath(f.conf, "")};
  for (const auto& [name, mb] : f.by_name) {
    computed.insert(MailboxNameLockPath(f.conf, mb));
    if (!mb.Owner().empty()) computed.insert(UserNamespaceLockPath(f.conf, mb.Owner()));
    if (mb.IsReal()) {
      EXPECT_TRUE(seen.contains(MailboxNameLockPath(f.conf, mb))) << name;
    }
  }
  EXPECT_EQ(computed, seen);
}

TEST(PathsFixture, UuidLockFiles) { CheckLocks("uuid"); }
TEST(PathsFixture, LegacyLockFiles) { CheckLocks("legacy"); }
TEST(PathsFixture, VirtdomainsLockFiles) { CheckLocks("vdom"); }

}  // namespace
}  // namespace cyrsync::cyrus
