#include "cyrus/header.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "common/env.h"

namespace cyrsync::cyrus {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kMagic =
    "\241\002\213\015Cyrus mailbox header\n"
    "\"The best thing about this system was that it had lots of goals.\"\n"
    "\t--Jim Morris on Andrew\n";

TEST(HeaderTest, MagicIs115Bytes) { EXPECT_EQ(kMagic.size(), 115u); }

TEST(HeaderTest, TextFormat) {
  std::string bytes = kMagic + "user.fred\t0123456789abcdef\n" + "Work Junk  $Label3 \n" +
                      "fred\tlrswipkxtecda\tanyone\tlrs\t\n";
  auto r = ParseMailboxHeader(bytes, "/spool/f/user/fred/cyrus.header");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->dlist_format);
  EXPECT_EQ(r->mbtype, "");
  EXPECT_EQ(r->name, "");
  EXPECT_EQ(r->quotaroot, "user.fred");
  EXPECT_EQ(r->uniqueid, "0123456789abcdef");
  // The empty token between "Junk" and "$Label3" is an undefined slot.
  EXPECT_THAT(r->user_flags, ElementsAre("Work", "Junk", "", "$Label3"));
  EXPECT_EQ(r->acl, "fred\tlrswipkxtecda\tanyone\tlrs\t");
}

TEST(HeaderTest, TextFormatEmptyQuotarootNoFlagsNoFinalNewline) {
  std::string bytes = kMagic + "\tabc\n\nanyone\tlrs\t";
  auto r = ParseMailboxHeader(bytes, "h");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->quotaroot, "");
  EXPECT_EQ(r->uniqueid, "abc");
  EXPECT_TRUE(r->user_flags.empty());
  EXPECT_EQ(r->acl, "anyone\tlrs\t");
}

TEST(HeaderTest, TextFormatVeryOldWithoutUniqueid) {
  auto r = ParseMailboxHeader(kMagic + "user.x\n\n\n", "h");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->quotaroot, "user.x");
  EXPECT_EQ(r->uniqueid, "");
}

TEST(HeaderTest, DlistFormat) {
  std::string bytes = kMagic +
                      "%(T e N user.alice I 7a3c1f00-aaaa Q user.alice "
                      "A %(alice lrswipkxtecdan anyone lrs) U ($Label1 NIL $Label3))\n";
  auto r = ParseMailboxHeader(bytes, "h");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->dlist_format);
  EXPECT_EQ(r->mbtype, "e");
  EXPECT_EQ(r->name, "user.alice");
  EXPECT_EQ(r->uniqueid, "7a3c1f00-aaaa");
  EXPECT_EQ(r->quotaroot, "user.alice");
  EXPECT_THAT(r->user_flags, ElementsAre("$Label1", "", "$Label3"));
  EXPECT_EQ(r->acl, "alice\tlrswipkxtecdan\tanyone\tlrs\t");
}

TEST(HeaderTest, RewriteDlistReplacesNameAndUniqueidOnly) {
  const std::string bytes = kMagic +
                            "%(T e N user.alice I 7a3c1f00-aaaa Q user.alice "
                            "A %(alice lrswipkxtecdan anyone lrs) U ($Label1 NIL $Label3))\n";
  auto r = RewriteMailboxHeader(bytes, "h", "user.alice.Old Mail", "newid1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, kMagic +
                    "%(T e N \"user.alice.Old Mail\" I newid1 Q user.alice "
                    "A %(alice lrswipkxtecdan anyone lrs) U ($Label1 NIL $Label3))\n");
  auto h = ParseMailboxHeader(*r, "h");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->name, "user.alice.Old Mail");
  EXPECT_EQ(h->uniqueid, "newid1");
  EXPECT_THAT(h->user_flags, ElementsAre("$Label1", "", "$Label3"));
}

TEST(HeaderTest, RewriteTextReplacesUniqueid) {
  const std::string bytes = kMagic + "user.bob\told-id\n$A $B \nbob\tlrs\t\n";
  auto r = RewriteMailboxHeader(bytes, "h", "user.bob.Restored", "new-id");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, kMagic + "user.bob\tnew-id\n$A $B \nbob\tlrs\t\n");
}

TEST(HeaderTest, RewriteRefusesADlistWithoutNameOrId) {
  EXPECT_EQ(RewriteMailboxHeader(kMagic + "%(T e I abc)\n", "h", "n", "i").status().code(),
            Code::kCorruption);
  EXPECT_EQ(RewriteMailboxHeader("junk", "h", "n", "i").status().code(), Code::kCorruption);
}

TEST(HeaderTest, DlistFormatMinimal) {
  auto r = ParseMailboxHeader(kMagic + "%(T e N shared I abc)\n", "h");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->quotaroot, "");
  EXPECT_TRUE(r->user_flags.empty());
  EXPECT_EQ(r->acl, "");
}

TEST(HeaderTest, BadMagicNamesPathAndOffset) {
  std::string bytes = kMagic + "%(T e)\n";
  bytes[20] = 'X';
  auto r = ParseMailboxHeader(bytes, "/x/cyrus.header");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_THAT(r.error().message(), HasSubstr("/x/cyrus.header: bad header magic at offset 20"));
}

TEST(HeaderTest, TruncatedMagic) {
  auto r = ParseMailboxHeader(kMagic.substr(0, 50), "p");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("p: truncated header magic at offset 50"));
}

TEST(HeaderTest, TruncatedTextLines) {
  auto r1 = ParseMailboxHeader(kMagic + "user.fred\tabc", "p");
  ASSERT_FALSE(r1.ok());
  EXPECT_THAT(r1.error().message(), HasSubstr("truncated quotaroot line at offset 128"));
  auto r2 = ParseMailboxHeader(kMagic + "q\tu\nflag", "p");
  ASSERT_FALSE(r2.ok());
  EXPECT_THAT(r2.error().message(), HasSubstr("truncated user flags line at offset 123"));
  auto r3 = ParseMailboxHeader(kMagic, "p");
  ASSERT_FALSE(r3.ok());
  EXPECT_EQ(r3.error().code(), Code::kCorruption);
}

TEST(HeaderTest, TooManyTextFlags) {
  std::string flags;
  for (int i = 0; i < 129; ++i) flags += "f" + std::to_string(i) + " ";
  auto r = ParseMailboxHeader(kMagic + "\tu\n" + flags + "\n\n", "p");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("more than 128 user flags at offset"));
}

TEST(HeaderTest, MalformedDlistGivesFileOffset) {
  auto r = ParseMailboxHeader(kMagic + "%(T e N user.x\n", "p");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  // 115 magic bytes + 15 bytes of body: the error points into the file, not into the body.
  EXPECT_THAT(r.error().message(), HasSubstr("p: dlist: unterminated kvlist at offset 130"));
}

TEST(HeaderTest, DlistWrongShapes) {
  auto list = ParseMailboxHeader(kMagic + "%(U %(a b))\n", "p");
  ASSERT_FALSE(list.ok());
  EXPECT_THAT(list.error().message(), HasSubstr("user flags (U) not a list at offset 115"));
  auto acl = ParseMailboxHeader(kMagic + "%(A (a b))\n", "p");
  ASSERT_FALSE(acl.ok());
  EXPECT_THAT(acl.error().message(), HasSubstr("ACL (A) not a kvlist"));
  auto top = ParseMailboxHeader(kMagic + "%(\n", "p");
  ASSERT_FALSE(top.ok());
}

// The real 3.6.1 header written by tests/data/make_cyrus_fixtures.sh.
TEST(HeaderTest, GoldenCyrus361) {
  const char* src = std::getenv("CYRSYNC_SOURCE_DIR");
  ASSERT_NE(src, nullptr) << "CYRSYNC_SOURCE_DIR not set (run through ctest)";
  std::string dir = std::string(src) + "/tests/data/cyrus-3.6.1/";
  auto bytes = ReadFileToString(Env::Default(), dir + "cyrus.header");
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto r = ParseMailboxHeader(*bytes, "cyrus.header");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->dlist_format);
  EXPECT_EQ(r->mbtype, "e");
  EXPECT_EQ(r->name, "user.alice");
  EXPECT_FALSE(r->uniqueid.empty());
  EXPECT_THAT(r->user_flags, ElementsAre("$Label1", "$Label2"));
  EXPECT_EQ(r->acl, "alice\tlrswipkxtecdan\t");
}

}  // namespace
}  // namespace cyrsync::cyrus
