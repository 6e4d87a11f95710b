#include "cyrus/dlist.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace cyrsync::cyrus {
namespace {

using ::testing::HasSubstr;

TEST(DlistTest, ParsesAtom) {
  auto r = ParseDlist("hello");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, Dlist::Kind::kAtom);
  EXPECT_EQ(r->str, "hello");
}

TEST(DlistTest, NilAndQuotedNil) {
  auto nil = ParseDlist("NIL");
  ASSERT_TRUE(nil.ok());
  EXPECT_EQ(nil->kind, Dlist::Kind::kNil);
  auto quoted = ParseDlist("\"NIL\"");
  ASSERT_TRUE(quoted.ok());
  EXPECT_EQ(quoted->kind, Dlist::Kind::kAtom);
  EXPECT_EQ(quoted->str, "NIL");
}

TEST(DlistTest, QuotedStringWithEscapesAndEmpty) {
  auto r = ParseDlist(R"(("a b" "" "x\"y\\z"))");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->items.size(), 3u);
  EXPECT_EQ(r->items[0].str, "a b");
  EXPECT_EQ(r->items[1].kind, Dlist::Kind::kAtom);
  EXPECT_EQ(r->items[1].str, "");
  EXPECT_EQ(r->items[2].str, "x\"y\\z");
}

TEST(DlistTest, Literal) {
  std::string text = "(a {5}\r\nb\r\ncd {3+}\r\n)(( z)";
  auto r = ParseDlist(text);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->items.size(), 4u);
  EXPECT_EQ(r->items[1].str, "b\r\ncd");
  EXPECT_EQ(r->items[2].str, ")((");
  EXPECT_EQ(r->items[3].str, "z");
}

TEST(DlistTest, MailboxesDbStyleKvList) {
  std::string text =
      "%(T e I 7a3c1f00-1111-2222-3333-444455556666 P default V 1700000000 "
      "A %(anyone lrs fred lrswipkxtecdan) H (%(N user\x1f"
      "old M 5)))";
  auto r = ParseDlist(text);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, Dlist::Kind::kKvList);
  EXPECT_EQ(r->GetString("T"), "e");
  EXPECT_EQ(r->GetString("P"), "default");
  EXPECT_EQ(r->GetString("V"), "1700000000");
  EXPECT_EQ(r->GetString("missing", "dflt"), "dflt");
  EXPECT_EQ(r->GetString("A", "notatom"), "notatom");
  const Dlist* acl = r->Find("A");
  ASSERT_NE(acl, nullptr);
  ASSERT_EQ(acl->kv.size(), 2u);
  EXPECT_EQ(acl->kv[1].first, "fred");
  EXPECT_EQ(acl->kv[1].second.str, "lrswipkxtecdan");
  const Dlist* h = r->Find("H");
  ASSERT_NE(h, nullptr);
  ASSERT_EQ(h->items.size(), 1u);
  EXPECT_EQ(h->items[0].GetString("N"),
            "user\x1f"
            "old");
  EXPECT_EQ(r->Find("nope"), nullptr);
}

TEST(DlistTest, EmptyContainersAndTrailingWhitespace) {
  auto r = ParseDlist("%(U () A %()) \r\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->Find("U")->kind, Dlist::Kind::kList);
  EXPECT_TRUE(r->Find("U")->items.empty());
  EXPECT_EQ(r->Find("A")->kind, Dlist::Kind::kKvList);
}

TEST(DlistTest, NilInsideList) {
  auto r = ParseDlist("(a NIL b)");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->items.size(), 3u);
  EXPECT_EQ(r->items[1].kind, Dlist::Kind::kNil);
}

struct BadCase {
  const char* text;
  const char* offset;
};

TEST(DlistTest, MalformedInputNamesOffset) {
  const BadCase cases[] = {
      {"", "offset 0"},
      {"(a b", "offset 4"},
      {"%(a)", "offset 3"},
      {"%(a b", "offset 5"},
      {"a b", "offset 2"},
      {"\"abc", "offset 4"},
      {"\"a\nb\"", "offset 2"},
      {"{10}\r\nabc", "offset 6"},
      {"{x}\r\n", "offset 1"},
      {"{99999999999999999999}\r\n", "offset 21"},
      {"%{p g 3}\r\nabc", "offset 0"},
      {")", "offset 0"},
      {"%((a) b)", "offset 2"},
  };
  for (const auto& c : cases) {
    auto r = ParseDlist(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code(), Code::kCorruption) << c.text;
    EXPECT_THAT(r.error().message(), HasSubstr(c.offset))
        << c.text << " -> " << r.error().message();
  }
}

TEST(DlistTest, DeepNestingIsRejectedNotCrashing) {
  std::string text(100000, '(');
  auto r = ParseDlist(text);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("nesting too deep"));
}

TEST(DlistTest, PrintChoosesAtomQuotedOrLiteralAndRoundTrips) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"plain", "plain"},        {"two words", "\"two words\""}, {"", "\"\""},
      {"NIL", "\"NIL\""},        {"a\"b", "{3}\r\na\"b"},      {"caf\xc3\xa9", "{5}\r\ncaf\xc3\xa9"},
      {"50%", "{3}\r\n50%"},    {"x(y)", "\"x(y)\""},          {"a\\b", "{3}\r\na\\b"},
  };
  for (const auto& [value, printed] : cases) {
    Dlist d;
    d.kind = Dlist::Kind::kAtom;
    d.str = value;
    EXPECT_EQ(PrintDlist(d), printed) << value;
    Dlist list;
    list.kind = Dlist::Kind::kKvList;
    list.kv.emplace_back("K", d);
    auto back = ParseDlist(PrintDlist(list));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->GetString("K"), value);
  }
}

TEST(DlistTest, PrintNestedListsAndNil) {
  auto d = ParseDlist("%(A %(alice lrs) U ($a NIL $b) E ())");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(PrintDlist(*d), "%(A %(alice lrs) U ($a NIL $b) E ())");
}

// ParseDlistKeys gives what ParseDlist gives with the other top-level pairs left out, and the
// very same error (message and offset) for malformed input, also inside a value it skips.
TEST(DlistTest, ParseKeysBuildsOnlyThoseKeysAndChecksTheRest) {
  const std::string_view keys[] = {"I", "A"};
  const std::string texts[] = {
      "%(I abc H (%(N \"x\\\"y\" V {3}\r\nq)z NIL) A %(bob lrs) T e)",
      "%(T e)",
      "%()",
      "(I x)",
      "plain",
      "%(I {2}\r\nab H ((((deep))))) ",
      // malformed, in a skipped value and in a kept one
      "%(H (\"a\nb\") I x)",
      "%(H (a b I x)",
      "%(H {9}\r\nabc)",
      "%(H %(k) I x)",
      "%(I \"unterminated)",
      "%(H %{p g 3}\r\nabc)",
      "%(H x) trailing",
  };
  for (const std::string& text : texts) {
    auto want = ParseDlist(text);
    auto got = ParseDlistKeys(text, keys);
    ASSERT_EQ(got.ok(), want.ok()) << text;
    if (!want.ok()) {
      EXPECT_EQ(got.error().message(), want.error().message()) << text;
      continue;
    }
    if (want->kind == Dlist::Kind::kKvList) {
      std::erase_if(want->kv, [](const auto& kv) { return kv.first != "I" && kv.first != "A"; });
    }
    EXPECT_EQ(PrintDlist(*got), PrintDlist(*want)) << text;
  }
  auto d = ParseDlistKeys("%(I abc H (%(N x)) A %(bob lrs) T e)", keys);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(PrintDlist(*d), "%(I abc A %(bob lrs))");
}

}  // namespace
}  // namespace cyrsync::cyrus
