#include "cyrus/config.h"

#include <gtest/gtest.h>

#include <string>

#include "cyrus/cyrusdb_test_util.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::cyrus {
namespace {

// The stock Debian 12 /etc/imapd.conf, trimmed (values as shipped).
constexpr std::string_view kDebianConf = R"(# Debian imapd.conf
configdirectory: /var/lib/cyrus
proc_path: /run/cyrus/proc
mboxname_lockpath: /run/cyrus/lock
defaultpartition: default
partition-default: /var/spool/cyrus/mail
partition-news: /var/spool/cyrus/news
newsspool: /var/spool/news
altnamespace: no
unixhierarchysep: no
   # indented comment
umask: 077
sieveusehomedir: false
sievedir: /var/spool/sieve
hashimapspool: true
sasl_pwcheck_method: auxprop
)";

Status ParseError(std::string_view text) {
  auto r = ParseImapdConf(text, "test.conf");
  return r.ok() ? Status::Ok() : r.error();
}

void ExpectErrorOnLine(std::string_view text, int line) {
  Status s = ParseError(text);
  ASSERT_FALSE(s.ok()) << text;
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("test.conf: line " + std::to_string(line)), std::string::npos)
      << s.ToString();
}

TEST(Config, ParsesDebianConf) {
  auto r = ParseImapdConf(kDebianConf, "/etc/imapd.conf");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  const ImapdConf& c = *r;
  EXPECT_EQ(c.source_path, "/etc/imapd.conf");
  EXPECT_EQ(c.configdirectory, "/var/lib/cyrus");
  EXPECT_EQ(c.partitions.at("default"), "/var/spool/cyrus/mail");
  EXPECT_EQ(c.partitions.at("news"), "/var/spool/cyrus/news");
  EXPECT_EQ(c.sievedir, "/var/spool/sieve");
  EXPECT_EQ(c.lockpath, "/run/cyrus/lock");
  EXPECT_EQ(c.mboxlist_db_path, "/var/lib/cyrus/mailboxes.db");
  EXPECT_TRUE(c.hashimapspool);
  EXPECT_FALSE(c.altnamespace);
  EXPECT_FALSE(c.unixhierarchysep);
  EXPECT_FALSE(c.fulldirhash);
  EXPECT_EQ(c.Get("umask"), "077");
  EXPECT_EQ(c.Get("sasl_pwcheck_method"), "auxprop");
  EXPECT_EQ(c.Get("nosuchkey", "dflt"), "dflt");
}

TEST(Config, DefaultsAre36CompiledDefaults) {
  auto r = ParseImapdConf("configdirectory: /c\n", "x");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->defaultpartition, "default");
  EXPECT_EQ(r->lockpath, "/c/lock");
  EXPECT_EQ(r->mboxlist_db_path, "/c/mailboxes.db");
  EXPECT_EQ(r->mboxlist_db, "twoskip");
  EXPECT_EQ(r->seenstate_db, "twoskip");
  EXPECT_EQ(r->subscription_db, "flat");
  EXPECT_EQ(r->quota_db, "quotalegacy");
  EXPECT_TRUE(r->unixhierarchysep);
  EXPECT_TRUE(r->altnamespace);
  EXPECT_FALSE(r->hashimapspool);
  EXPECT_FALSE(r->mailbox_legacy_dirs);
  EXPECT_FALSE(r->archive_enabled);
  EXPECT_EQ(r->virtdomains, "off");
  EXPECT_EQ(r->deletedprefix, "DELETED");
  EXPECT_TRUE(r->metapartition_files.empty());  // 3.6.1: <empty string>
  EXPECT_TRUE(r->sievedir.empty());
}

TEST(Config, KeysAreCaseInsensitiveValuesTrimmedHashIsNotAComment) {
  auto r = ParseImapdConf("ConfigDirectory:   /c  \r\nSievedir: /s # not a comment\n", "x");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->configdirectory, "/c");
  EXPECT_EQ(r->sievedir, "/s # not a comment");
  EXPECT_EQ(r->raw.count("configdirectory"), 1u);
}

// Verified against `cyr_info conf` of Cyrus 3.6.1: the first byte(s) decide.
TEST(Config, SwitchValuesAsCyrus) {
  for (const char* v : {"1", "yes", "t", "true", "on", "yexx", "onnn"}) {
    auto r = ParseImapdConf(std::string("configdirectory: /c\nhashimapspool: ") + v, "x");
    ASSERT_TRUE(r.ok()) << v;
    EXPECT_TRUE(r->hashimapspool) << v;
  }
  for (const char* v : {"0", "no", "f", "false", "off", "nope", "offfff"}) {
    auto r = ParseImapdConf(std::string("configdirectory: /c\nfulldirhash: ") + v, "x");
    ASSERT_TRUE(r.ok()) << v;
    EXPECT_FALSE(r->fulldirhash) << v;
  }
  for (const char* v : {"TRUE", "Yes", "o", "maybe"}) {
    ExpectErrorOnLine(std::string("configdirectory: /c\nunixhierarchysep: ") + v, 2);
  }
}

TEST(Config, VirtdomainsValuesAsCyrus) {
  auto vd = [](const char* v) {
    auto r = ParseImapdConf(std::string("configdirectory: /c\nvirtdomains: ") + v, "x");
    return r.ok() ? r->virtdomains : "error";
  };
  EXPECT_EQ(vd("off"), "off");
  EXPECT_EQ(vd("userid"), "userid");
  EXPECT_EQ(vd("on"), "on");
  EXPECT_EQ(vd("yes"), "on");
  EXPECT_EQ(vd("1"), "on");
  EXPECT_EQ(vd("no"), "off");
  EXPECT_EQ(vd("Off"), "error");
  EXPECT_EQ(vd("USERID"), "error");
}

TEST(Config, MalformedLinesNameTheLine) {
  ExpectErrorOnLine("configdirectory: /c\n\n# c\nbogus line\n", 4);
  ExpectErrorOnLine("configdirectory: /c\nsievedir:\n", 2);
  ExpectErrorOnLine("configdirectory: /c\nsievedir:   \n", 2);
  ExpectErrorOnLine("configdirectory: /c\nbad.key: x\n", 2);
  ExpectErrorOnLine(": x\n", 1);
  ExpectErrorOnLine("configdirectory: /c\npartition-a: /x\nPartition-A: /y\n", 3);
  ExpectErrorOnLine("configdirectory: /c\nmetapartition_files: header bogus\n", 2);
}

TEST(Config, MissingConfigdirectory) {
  Status s = ParseError("partition-default: /p\n");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("configdirectory"), std::string::npos);
}

TEST(Config, PartitionsMetaArchiveAndRootDir) {
  auto r = ParseImapdConf(
      "configdirectory: /c\n"
      "partition-default: /spool\n"
      "partition-p2: /spool2\n"
      "metapartition-default: /meta\n"
      "metapartition_files: header   index annotations\n"
      "archivepartition-default: /arch\n"
      "archive_enabled: yes\n"
      "metadir-cache-default: /fastcache\n"
      "sievedir: /sieve\n",
      "x");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  const ImapdConf& c = *r;
  EXPECT_EQ(c.metapartition_files, (std::set<std::string>{"header", "index", "annotations"}));
  EXPECT_TRUE(c.archive_enabled);
  EXPECT_EQ(*c.RootDir("configdirectory"), "/c");
  EXPECT_EQ(*c.RootDir("sievedir"), "/sieve");
  EXPECT_EQ(*c.RootDir("partition-default"), "/spool");
  EXPECT_EQ(*c.RootDir("partition-p2"), "/spool2");
  EXPECT_EQ(*c.RootDir("metapartition-default"), "/meta");
  EXPECT_EQ(*c.RootDir("archivepartition-default"), "/arch");
  EXPECT_EQ(*c.RootDir("metadir-cache-default"), "/fastcache");
  EXPECT_EQ(c.RootDir("partition-nope").error().code(), Code::kNotFound);
  EXPECT_EQ(c.RootDir("metapartition-p2").error().code(), Code::kNotFound);
  EXPECT_EQ(c.RootDir("metadir-index-default").error().code(), Code::kNotFound);
  EXPECT_EQ(c.RootDir("bogus").error().code(), Code::kInvalidArgument);
}

TEST(Config, UnsetSievedirIsNotFound) {
  auto r = ParseImapdConf("configdirectory: /c\n", "x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->RootDir("sievedir").error().code(), Code::kNotFound);
}

TEST(Config, LoadFollowsIncludes) {
  cyrsync::testing::TempDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(AtomicWriteFile(env, dir.Sub("main.conf"),
                              "configdirectory: /c\n@include: extra.conf\nsievedir: /s\n", {})
                  .ok());
  ASSERT_TRUE(AtomicWriteFile(env, dir.Sub("extra.conf"), "partition-x: /px\n", {}).ok());
  auto r = LoadImapdConf(env, dir.Sub("main.conf"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->partitions.at("x"), "/px");
  EXPECT_EQ(r->sievedir, "/s");
  EXPECT_EQ(r->source_path, dir.Sub("main.conf"));
  EXPECT_EQ(ParseError("configdirectory: /c\n@include: extra.conf\n").code(),
            Code::kInvalidArgument);
  EXPECT_EQ(LoadImapdConf(env, dir.Sub("missing.conf")).error().code(), Code::kNotFound);
}

TEST(Config, IncludeErrorsNameTheIncludedFile) {
  cyrsync::testing::TempDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(
      AtomicWriteFile(env, dir.Sub("main.conf"), "configdirectory: /c\n@include: bad.conf\n", {})
          .ok());
  ASSERT_TRUE(AtomicWriteFile(env, dir.Sub("bad.conf"), "\nno colon here\n", {}).ok());
  auto r = LoadImapdConf(env, dir.Sub("main.conf"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find(dir.Sub("bad.conf") + ": line 2"), std::string::npos)
      << r.error().ToString();
}

TEST(ConfigFixture, RealCyrusConfigsParse) {
  for (const char* v : {"uuid", "legacy", "vdom"}) {
    std::string path = testing::FixturePath(std::string("mboxlist-3.6.1-") + v + "/imapd.conf");
    auto r = LoadImapdConf(Env::Default(), path);
    ASSERT_TRUE(r.ok()) << v << ": " << r.error().ToString();
    EXPECT_EQ(r->configdirectory, "/srv/cyrfx/conf");
    EXPECT_EQ(r->lockpath, "/srv/cyrfx/run/lock");
    EXPECT_TRUE(r->hashimapspool);
  }
}

}  // namespace
}  // namespace cyrsync::cyrus
