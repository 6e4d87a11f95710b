#include "cyrus/mboxlist.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "cyrus/cyrusdb_test_util.h"
#include "tests/testutil/counting_env.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::cyrus {
namespace {

using testing::FixturePath;
using testing::ReadFixture;

ImapdConf FixtureConf(const std::string& variant) {
  std::string dir = "mboxlist-3.6.1-" + variant;
  auto conf = LoadImapdConf(Env::Default(), FixturePath(dir + "/imapd.conf"));
  EXPECT_TRUE(conf.ok()) << conf.error().ToString();
  ImapdConf c = conf.ok() ? *conf : ImapdConf{};
  c.mboxlist_db_path = FixturePath(dir + "/mailboxes.db");
  return c;
}

std::map<std::string, MailboxEntry> ByName(const std::vector<MailboxEntry>& v) {
  std::map<std::string, MailboxEntry> m;
  for (const auto& e : v) m[e.intname] = e;
  return m;
}

std::string AclFromJson(const nlohmann::json& acl) {
  std::string out;
  for (const auto& [id, rights] : acl.items()) out += id + "\t" + rights.get<std::string>() + "\t";
  return out;
}

// Every entry `ctl_mboxlist -d` printed, with the same name, uniqueid, mbtype, partition,
// uidvalidity and ACL.
void CheckAgainstCtlMboxlist(const std::string& variant) {
  SCOPED_TRACE(variant);
  ImapdConf conf = FixtureConf(variant);
  auto entries = LoadMailboxList(Env::Default(), conf);
  ASSERT_TRUE(entries.ok()) << entries.error().ToString();
  auto dump =
      nlohmann::json::parse(ReadFixture("mboxlist-3.6.1-" + variant + "/ctl_mboxlist.json"));
  auto by_name = ByName(*entries);
  ASSERT_EQ(by_name.size(), dump.size());
  for (const auto& [name, j] : dump.items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(by_name.contains(name));
    const MailboxEntry& e = by_name[name];
    EXPECT_EQ(e.uniqueid, j.at("uniqueid").get<std::string>());
    EXPECT_EQ(e.mbtype, j.at("mbtype").get<std::string>());
    EXPECT_EQ(e.partition, j.value("partition", ""));
    EXPECT_EQ(std::to_string(e.uidvalidity), j.at("uidvalidity").get<std::string>());
    EXPECT_EQ(e.acl, AclFromJson(j.at("acl")));
    EXPECT_EQ(e.tombstone, e.mbtype.find('d') != std::string::npos);
    EXPECT_EQ(e.legacy_dirs, variant != "uuid");
    EXPECT_EQ(e.IsReal(), !e.tombstone);
  }
}

TEST(MboxlistFixture, Uuid36MatchesCtlMboxlist) { CheckAgainstCtlMboxlist("uuid"); }
TEST(MboxlistFixture, Legacy36MatchesCtlMboxlist) { CheckAgainstCtlMboxlist("legacy"); }
TEST(MboxlistFixture, VirtdomainsMatchesCtlMboxlist) { CheckAgainstCtlMboxlist("vdom"); }

TEST(MboxlistFixture, TombstonesAndOwners) {
  auto entries = LoadMailboxList(Env::Default(), FixtureConf("legacy"));
  ASSERT_TRUE(entries.ok()) << entries.error().ToString();
  auto m = ByName(*entries);
  const MailboxEntry& old = m.at("user.bob.Old");
  EXPECT_TRUE(old.tombstone);
  EXPECT_FALSE(old.IsReal());
  EXPECT_EQ(old.partition, "");
  EXPECT_EQ(old.uniqueid, m.at("user.bob.New").uniqueid);  // renamed, same mailbox
  EXPECT_EQ(m.at("user.john^doe.Notes").Owner(), "john.doe");
  EXPECT_EQ(m.at("user.alice.v1^2").Owner(), "alice");
  EXPECT_EQ(m.at("shared.news").Owner(), "");
  for (const auto& [name, e] : m) {
    if (name.rfind("DELETED.", 0) == 0) {
      EXPECT_EQ(e.Owner(), "bob");
      EXPECT_TRUE(e.IsReal());
    }
  }
}

TEST(MboxlistFixture, VirtdomainOwners) {
  auto entries = LoadMailboxList(Env::Default(), FixtureConf("vdom"));
  ASSERT_TRUE(entries.ok()) << entries.error().ToString();
  auto m = ByName(*entries);
  EXPECT_EQ(m.at("example.com!user.alice.Sent").Owner(), "alice@example.com");
  EXPECT_EQ(m.at("example.com!user.alice.Sent").Domain(), "example.com");
  EXPECT_EQ(m.at("example.com!shared.news").Owner(), "");
  EXPECT_EQ(m.at("shared").Domain(), "");
}

// LoadMailboxList opens the file once, takes the shared fcntl lock before reading, and
// releases it before returning.
class LockCheckingEnv : public EnvWrapper {
 public:
  using EnvWrapper::EnvWrapper;
  struct File : ReadableFile {
    std::unique_ptr<ReadableFile> base;
    LockCheckingEnv* env;
    Result<size_t> ReadAt(uint64_t off, std::span<char> out) override {
      env->events.push_back("read");
      env->locked_during_read = env->locked_during_read || OtherProcessCannotWriteLock(path());
      return base->ReadAt(off, out);
    }
    Result<FileStat> Stat() override { return base->Stat(); }
    Status Lock(LockMode mode) override {
      env->events.push_back(mode == LockMode::kShared ? "lock-shared" : "lock-exclusive");
      return base->Lock(mode);
    }
    const std::string& path() const override { return base->path(); }
  };
  Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& p) override {
    events.push_back("open");
    ASSIGN_OR_RETURN(auto f, EnvWrapper::OpenRead(p));
    auto w = std::make_unique<File>();
    w->base = std::move(f);
    w->env = this;
    return std::unique_ptr<ReadableFile>(std::move(w));
  }

  // fcntl locks never conflict within one process, so ask a child to try a write lock.
  // Raw syscalls on purpose: this checks the kernel-level lock, not our Env.
  static bool OtherProcessCannotWriteLock(const std::string& path) {
    pid_t pid = fork();
    if (pid == 0) {
      int fd = ::open(path.c_str(), O_RDWR);
      struct flock fl = {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      _exit(fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 1;
  }

  std::vector<std::string> events;
  bool locked_during_read = false;
};

TEST(MboxlistLoad, ReadsUnderSharedLockAndReleasesIt) {
  cyrsync::testing::TempDir dir;
  ImapdConf conf = FixtureConf("uuid");
  std::string copy = dir.Sub("mailboxes.db");
  ASSERT_TRUE(
      AtomicWriteFile(Env::Default(), copy, ReadFixture("mboxlist-3.6.1-uuid/mailboxes.db"), {})
          .ok());
  conf.mboxlist_db_path = copy;
  LockCheckingEnv env(Env::Default());
  auto entries = LoadMailboxList(&env, conf);
  ASSERT_TRUE(entries.ok()) << entries.error().ToString();
  ASSERT_GE(env.events.size(), 3u);
  EXPECT_EQ(env.events[0], "open");
  EXPECT_EQ(env.events[1], "lock-shared");
  EXPECT_EQ(env.events[2], "read");
  EXPECT_EQ(std::count(env.events.begin(), env.events.end(), "open"), 1);
  EXPECT_TRUE(env.locked_during_read);
  EXPECT_FALSE(LockCheckingEnv::OtherProcessCannotWriteLock(copy)) << "lock not released";
}

TEST(MboxlistLoad, MissingFileAndCorruptFile) {
  cyrsync::testing::TempDir dir;
  ImapdConf conf = FixtureConf("uuid");
  conf.mboxlist_db_path = dir.Sub("nope.db");
  EXPECT_EQ(LoadMailboxList(Env::Default(), conf).error().code(), Code::kNotFound);
  std::string db = ReadFixture("mboxlist-3.6.1-uuid/mailboxes.db");
  conf.mboxlist_db_path = dir.Sub("bad.db");
  ASSERT_TRUE(AtomicWriteFile(Env::Default(), conf.mboxlist_db_path, db.substr(0, 300), {}).ok());
  auto r = LoadMailboxList(Env::Default(), conf);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(r.error().message().find(conf.mboxlist_db_path), std::string::npos);
}

TEST(MboxlistLoad, CountingEnvSeesOneOpen) {
  cyrsync::testing::CountingEnv env(Env::Default());
  auto entries = LoadMailboxList(&env, FixtureConf("legacy"));
  ASSERT_TRUE(entries.ok()) << entries.error().ToString();
  EXPECT_EQ(env.Count("open"), 1u);
  EXPECT_EQ(env.Count("write"), 0u);
}

// ---- synthetic records for every layout a 3.6 server may read

ImapdConf EmptyConf() {
  ImapdConf c;
  c.configdirectory = "/c";
  return c;
}

TEST(Mboxlist, Parses2xTextValues) {
  KvList recs = {
      {"user.alice", "0 default alice\tlrswipcda\tanyone\tp\t"},
      {"user.alice.Old", "16 default alice\tlrswipcda\t"},
      {"user.bob", "1 backend1!default bob\tlrs\t"},
      {"user.carol", "(uniqueid 0123456789abcdef specialuse \\Sent) 0 p2 carol\tall\t"},
      {"user.dave.Cal", "32 default \t"},
  };
  auto r = ParseMailboxList(recs, EmptyConf());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  auto m = ByName(*r);
  EXPECT_EQ(m["user.alice"].partition, "default");
  EXPECT_EQ(m["user.alice"].acl, "alice\tlrswipcda\tanyone\tp\t");
  EXPECT_EQ(m["user.alice"].mbtype, "el");
  EXPECT_TRUE(m["user.alice"].legacy_dirs);
  EXPECT_TRUE(m["user.alice"].IsReal());
  EXPECT_EQ(m["user.alice.Old"].mbtype, "edl");
  EXPECT_TRUE(m["user.alice.Old"].tombstone);
  EXPECT_TRUE(m["user.bob"].remote);
  EXPECT_EQ(m["user.bob"].partition, "default");
  EXPECT_FALSE(m["user.bob"].IsReal());
  EXPECT_EQ(m["user.carol"].uniqueid, "0123456789abcdef");
  EXPECT_EQ(m["user.carol"].partition, "p2");
  EXPECT_EQ(m["user.dave.Cal"].mbtype, "cl");
}

TEST(Mboxlist, Parses25To34DlistValues) {
  KvList recs = {
      {"$RACL$U$bob$user.alice", ""},
      {"example.com!user.x", "%(A %(x@example.com lrs) I 1234 P default V 77 M 1500000000)"},
      {"user.alice.Gone", "%(A %() I abcd T d V 9 M 1500000000)"},
      {"user.alice.Res", "%(T z P default I r1 M 1)"},
      {"user.alice.Cal", "%(T c P default I c1 M 1 S backend2)"},
  };
  auto r = ParseMailboxList(recs, EmptyConf());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->size(), 4u);
  auto m = ByName(*r);
  const MailboxEntry& x = m["example.com!user.x"];
  EXPECT_EQ(x.uniqueid, "1234");
  EXPECT_EQ(x.uidvalidity, 77u);
  EXPECT_EQ(x.acl, "x@example.com\tlrs\t");
  EXPECT_EQ(x.mbtype, "el");
  EXPECT_TRUE(x.IsReal());
  EXPECT_EQ(x.Owner(), "x@example.com");
  EXPECT_EQ(m["user.alice.Gone"].mbtype, "edl");
  EXPECT_FALSE(m["user.alice.Gone"].IsReal());
  EXPECT_TRUE(m["user.alice.Res"].reserved);
  EXPECT_FALSE(m["user.alice.Res"].IsReal());
  EXPECT_TRUE(m["user.alice.Cal"].remote);
  EXPECT_EQ(m["user.alice.Cal"].mbtype, "cl");
}

TEST(Mboxlist, Parses36Records) {
  KvList recs = {
      {"AU\x1e"
       "bob\x1e"
       "user\x1f"
       "alice",
       ""},
      {"Iu1",
       "%(T e N user\x1f"
       "alice P default V 1 A %(alice lrs) H ())"},
      {"Nexample.com\x1duser\x1f"
       "j.d\x1f"
       "Sent",
       "%(T el I u2 P p1 V 5 M 1)"},
      {"Nuser\x1f"
       "alice",
       "%(T e I u1 P default V 1 M 1 A %(alice lrs))"},
      {"Nuser\x1f"
       "alice\x1f"
       "Old",
       "%(T ed I u3 V 2 M 1)"},
      {"Nuser\x1f"
       "alice\x1f"
       "Mid",
       "%(T ei V 2 M 1)"},
      {"Nuser\x1f"
       "alice\x1f"
       "Mv",
       "%(T em I u4 P default)"},
      {"Nuser\x1f"
       "alice\x1f#sieve",
       "%(T f I u5 P default)"},
  };
  auto r = ParseMailboxList(recs, EmptyConf());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->size(), 6u);
  auto m = ByName(*r);
  EXPECT_EQ(m["user.alice"].uniqueid, "u1");
  EXPECT_FALSE(m["user.alice"].legacy_dirs);
  EXPECT_TRUE(m["user.alice"].IsReal());
  const MailboxEntry& jd = m["example.com!user.j^d.Sent"];
  EXPECT_TRUE(jd.legacy_dirs);
  EXPECT_EQ(jd.partition, "p1");
  EXPECT_EQ(jd.Owner(), "j.d@example.com");
  EXPECT_TRUE(m["user.alice.Old"].tombstone);
  EXPECT_TRUE(m["user.alice.Mid"].intermediate);
  EXPECT_FALSE(m["user.alice.Mid"].IsReal());
  EXPECT_TRUE(m["user.alice.Mv"].moving);
  EXPECT_FALSE(m["user.alice.Mv"].IsReal());
  EXPECT_EQ(m["user.alice.#sieve"].mbtype, "f");
  EXPECT_TRUE(m["user.alice.#sieve"].IsReal());
}

TEST(Mboxlist, MalformedValuesAreCorruptionNamingTheMailbox) {
  KvList v36 = {{"Iu1",
                 "%(T e N user\x1f"
                 "a)"},
                {"Nuser\x1f"
                 "a",
                 "not a dlist"}};
  auto r = ParseMailboxList(v36, EmptyConf());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(r.error().message().find("user.a"), std::string::npos) << r.error().ToString();
  KvList bad_dlist = {{"Iu1",
                       "%(T e N user\x1f"
                       "a)"},
                      {"Nuser\x1f"
                       "a",
                       "%(T e (unclosed"}};
  EXPECT_EQ(ParseMailboxList(bad_dlist, EmptyConf()).error().code(), Code::kCorruption);
  KvList bad_text = {{"user.x", "default x\tlrs\t"}};
  EXPECT_EQ(ParseMailboxList(bad_text, EmptyConf()).error().code(), Code::kCorruption);
  KvList empty = {{"user.x", ""}};
  EXPECT_EQ(ParseMailboxList(empty, EmptyConf()).error().code(), Code::kCorruption);
}

// Damaged values from a real database give a value or an error, never a crash.
TEST(Mboxlist, MutatedRealValuesNeverCrash) {
  auto recs = ReadCyrusDb(ReadFixture("mboxlist-3.6.1-vdom/mailboxes.db"), "m.db");
  ASSERT_TRUE(recs.ok()) << recs.error().ToString();
  const char kBytes[] = {'\0', ' ', '(', ')', '%', '"', '{', '\x1f', '\x1d', '9', 'x'};
  size_t errors = 0;
  for (size_t r = 0; r < recs->size(); ++r) {
    for (size_t i = 0; i < (*recs)[r].second.size(); i += 3) {
      KvList mutated = *recs;
      mutated[r].second[i] = kBytes[i % sizeof(kBytes)];
      errors += ParseMailboxList(mutated, EmptyConf()).ok() ? 0 : 1;
    }
  }
  EXPECT_GT(errors, 0u);
}

TEST(Mboxlist, OwnerAndDomain) {
  auto owner = [](std::string name) {
    MailboxEntry e;
    e.intname = std::move(name);
    return e.Owner();
  };
  EXPECT_EQ(owner("user.alice"), "alice");
  EXPECT_EQ(owner("user.alice.Sent.2023"), "alice");
  EXPECT_EQ(owner("DELETED.user.alice.Trash.5F00AA"), "alice");
  EXPECT_EQ(owner("DELETED.user.alice.5F00AA"), "alice");
  EXPECT_EQ(owner("ex.org!DELETED.user.a^b.X.5F00AA"), "a.b@ex.org");
  EXPECT_EQ(owner("DELETED.user.5F00AA"), "");
  EXPECT_EQ(owner("shared.news"), "");
  EXPECT_EQ(owner("user"), "");
  EXPECT_EQ(owner("users.alice"), "");
  MailboxEntry e;
  e.intname = "ex.org!user.a";
  EXPECT_EQ(e.Domain(), "ex.org");
}

TEST(Mboxlist, DbnameConversions) {
  const std::string db = std::string("example.com\x1d") +
                         "user\x1f"
                         "john.doe\x1f"
                         "Sent";
  EXPECT_EQ(DbnameToIntname(db), "example.com!user.john^doe.Sent");
  EXPECT_EQ(IntnameToDbname("example.com!user.john^doe.Sent"), db);
  EXPECT_EQ(DbnameToIntname("DELETED\x1fuser\x1f"
                            "bob\x1fTemp\x1f"
                            "6B0487E9"),
            "DELETED.user.bob.Temp.6B0487E9");
  EXPECT_EQ(IntnameToDbname("shared"), "shared");
  EXPECT_EQ(DbnameToIntname(""), "");
}

}  // namespace
}  // namespace cyrsync::cyrus
