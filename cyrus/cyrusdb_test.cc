#include "cyrus/cyrusdb.h"

#include <gtest/gtest.h>

#include <string>

#include "cyrus/cyrusdb_test_util.h"

namespace cyrsync::cyrus {
namespace {

using testing::FixturePath;
using testing::ParseDbtoolShow;
using testing::ReadFixture;
using testing::TwoskipBuilder;

void ExpectCorruptionAt(const Result<KvList>& r, uint64_t offset) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kCorruption) << r.error().ToString();
  EXPECT_NE(r.error().message().find("at offset " + std::to_string(offset)), std::string::npos)
      << r.error().ToString();
}

// ---- real Cyrus 3.6.1 files (cyr_dbtool wrote them; its `show` output is the oracle)

TEST(CyrusdbFixture, TwoskipMatchesCyrDbtool) {
  std::string db = ReadFixture("cyrusdb-3.6.1/twoskip.db");
  ASSERT_EQ(DetectDbFormat(db), DbFormat::kTwoskip);
  auto r = ReadTwoskip(db, "twoskip.db");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(*r, ParseDbtoolShow(ReadFixture("cyrusdb-3.6.1/twoskip.show.txt")));
}

TEST(CyrusdbFixture, SkiplistMatchesCyrDbtool) {
  std::string db = ReadFixture("cyrusdb-3.6.1/skiplist.db");
  ASSERT_EQ(DetectDbFormat(db), DbFormat::kSkiplist);
  auto r = ReadCyrusDb(db, "skiplist.db");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(*r, ParseDbtoolShow(ReadFixture("cyrusdb-3.6.1/skiplist.show.txt")));
}

TEST(CyrusdbFixture, FlatMatchesCyrDbtoolIncludingEscapes) {
  std::string db = ReadFixture("cyrusdb-3.6.1/flat.db");
  ASSERT_EQ(DetectDbFormat(db), DbFormat::kFlat);
  auto r = ReadCyrusDb(db, "flat.db");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  KvList want = ParseDbtoolShow(ReadFixture("cyrusdb-3.6.1/flat.show.txt"));
  EXPECT_EQ(*r, want);
  // The escaped values really were escaped on disk.
  EXPECT_NE(db.find("tab\ta\xff\x89"
                    "b\n"),
            std::string::npos);
  EXPECT_NE(db.find("ff\tx\xff\xffy\n"), std::string::npos);
}

// cyr_dbtool's "damage" action aborts half-way through a commit: DIRTY header, a record past
// current_size and rewritten pointers. The committed view is the file before the damage.
TEST(TwoskipFixture, CrashedCommitGivesCommittedView) {
  std::string db = ReadFixture("cyrusdb-3.6.1/twoskip-damaged.db");
  ASSERT_EQ(LoadBE32(db, 56) & 1, 1u) << "fixture should have DIRTY set";
  ASSERT_GT(db.size(), LoadBE64(db, 48));
  auto r = ReadTwoskip(db, "damaged.db");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(*r, ParseDbtoolShow(ReadFixture("cyrusdb-3.6.1/twoskip.show.txt")));
}

TEST(TwoskipFixture, MailboxesDbMatchesCyrDbtool) {
  for (const char* v : {"uuid", "legacy", "vdom"}) {
    std::string dir = std::string("mboxlist-3.6.1-") + v;
    auto r = ReadCyrusDb(ReadFixture(dir + "/mailboxes.db"), "mailboxes.db");
    ASSERT_TRUE(r.ok()) << v << ": " << r.error().ToString();
    EXPECT_EQ(*r, ParseDbtoolShow(ReadFixture(dir + "/dbtool-show.txt"))) << v;
  }
}

// ---- twoskip negative tests: every error names the offset

TEST(TwoskipCorrupt, TruncatedFileNamesCurrentSizeOffset) {
  std::string db = ReadFixture("cyrusdb-3.6.1/twoskip.db");
  auto r = ReadTwoskip(db.substr(0, db.size() - 8), "t.db");
  ExpectCorruptionAt(r, 48);
  EXPECT_NE(r.error().message().find("truncated"), std::string::npos);
  EXPECT_NE(r.error().message().find("t.db: "), std::string::npos);
}

TEST(TwoskipCorrupt, ShorterThanHeader) {
  std::string db = ReadFixture("cyrusdb-3.6.1/twoskip.db");
  ExpectCorruptionAt(ReadTwoskip(db.substr(0, 40), "t.db"), 0);
}

TEST(TwoskipCorrupt, HeaderCrc) {
  std::string db = ReadFixture("cyrusdb-3.6.1/twoskip.db");
  db[33] ^= 1;  // num_records
  ExpectCorruptionAt(ReadTwoskip(db, "t.db"), 60);
}

TEST(TwoskipCorrupt, BadMagicAndVersion) {
  std::string db = ReadFixture("cyrusdb-3.6.1/twoskip.db");
  std::string bad = db;
  bad[5] = 'X';
  ExpectCorruptionAt(ReadTwoskip(bad, "t.db"), 0);
  TwoskipBuilder b;
  std::string v2 = b.Finish(0);
  v2[23] = 2;  // version 2, header CRC recomputed below
  std::string h = v2.substr(0, 60);
  std::string crc;
  AppendBE32(&crc, Crc32(h));
  v2.replace(60, 4, crc);
  ExpectCorruptionAt(ReadTwoskip(v2, "t.db"), 20);
}

TEST(TwoskipCorrupt, RecordTailCrcNamesRecordOffset) {
  TwoskipBuilder b;
  uint64_t a = b.Add('+', 1, "alpha", "one");
  uint64_t c = b.Add('+', 1, "charlie", "three");
  std::vector<uint64_t> dp(32, 0);
  dp[0] = a;
  b.SetPtrs(b.dummy(), dp);
  b.SetPtrs(a, {c, 0});
  b.SetPtrs(c, {0, 0});
  std::string db = b.Finish(2);
  ASSERT_TRUE(ReadTwoskip(db, "t.db").ok());
  size_t val = db.find("three");
  db[val] = 'T';
  ExpectCorruptionAt(ReadTwoskip(db, "t.db"), c);
}

TEST(TwoskipCorrupt, RecordHeadCrcNamesRecordOffset) {
  TwoskipBuilder b;
  uint64_t a = b.Add('+', 1, "alpha", "one");
  std::vector<uint64_t> dp(32, 0);
  dp[1] = a;
  b.SetPtrs(b.dummy(), dp);
  std::string db = b.Finish(1);
  ASSERT_TRUE(ReadTwoskip(db, "t.db").ok());
  db[a + 5] ^= 0x40;  // vallen
  ExpectCorruptionAt(ReadTwoskip(db, "t.db"), a);
}

TEST(TwoskipCorrupt, PointerOutsideFileOrMisaligned) {
  TwoskipBuilder b;
  uint64_t a = b.Add('+', 1, "alpha", "one");
  std::vector<uint64_t> dp(32, 0);
  dp[0] = a + 4;  // misaligned
  b.SetPtrs(b.dummy(), dp);
  ExpectCorruptionAt(ReadTwoskip(b.Finish(1), "t.db"), a + 4);
}

TEST(TwoskipCorrupt, PointerLoopIsDetected) {
  TwoskipBuilder b;
  uint64_t a = b.Add('+', 1, "alpha", "one");
  uint64_t c = b.Add('+', 1, "beta", "two");
  std::vector<uint64_t> dp(32, 0);
  dp[0] = a;
  b.SetPtrs(b.dummy(), dp);
  b.SetPtrs(a, {c, 0});
  b.SetPtrs(c, {a, 0});
  auto r = ReadTwoskip(b.Finish(2), "t.db");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(r.error().message().find("loop"), std::string::npos) << r.error().ToString();
}

TEST(TwoskipCorrupt, RecordCountMismatchInCleanFile) {
  TwoskipBuilder b;
  uint64_t a = b.Add('+', 1, "alpha", "one");
  std::vector<uint64_t> dp(32, 0);
  dp[0] = a;
  b.SetPtrs(b.dummy(), dp);
  ExpectCorruptionAt(ReadTwoskip(b.Finish(5), "t.db"), 32);
}

// Every prefix and every single-byte flip of a real file must give a value or an error, never
// a crash or an out-of-bounds read (run under ASan in CI).
TEST(TwoskipCorrupt, AllTruncationsAndBitFlipsAreHandled) {
  std::string db = ReadFixture("mboxlist-3.6.1-uuid/mailboxes.db");
  for (size_t n = 0; n < db.size(); ++n) {
    auto r = ReadTwoskip(db.substr(0, n), "t.db");
    ASSERT_FALSE(r.ok()) << "prefix " << n;
    EXPECT_NE(r.error().message().find("at offset"), std::string::npos);
  }
  size_t errors = 0;
  for (size_t i = 0; i < db.size(); ++i) {
    std::string bad = db;
    bad[i] ^= 0x5a;
    errors += ReadTwoskip(bad, "t.db").ok() ? 0 : 1;
  }
  EXPECT_GT(errors, db.size() / 2);
}

// ---- twoskip semantics on hand-made files

TEST(Twoskip, SkipsDeleteRecordsAndUsesNewerLevel0Pointer) {
  TwoskipBuilder b;
  uint64_t a = b.Add('+', 1, "a", "1");
  uint64_t old_b = b.Add('+', 1, "b", "old");
  uint64_t c = b.Add('+', 2, "c", "3");
  uint64_t del = b.Add('-', 0, "", "");
  uint64_t new_b = b.Add('+', 1, "b", "new");
  std::vector<uint64_t> dp(32, 0);
  dp[0] = a;
  b.SetPtrs(b.dummy(), dp);
  b.SetPtrs(a, {old_b, new_b});  // the larger of the two wins
  b.SetPtrs(old_b, {c, 0});
  b.SetPtrs(new_b, {del, 0});  // "c" was deleted afterwards
  b.SetPtrs(del, {0});
  b.SetPtrs(c, {0, 0, 0});
  auto r = ReadTwoskip(b.Finish(2), "t.db");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(*r, (KvList{{"a", "1"}, {"b", "new"}}));
}

TEST(Twoskip, IgnoresPointersPastCommittedEnd) {
  TwoskipBuilder b;
  uint64_t a = b.Add('+', 1, "a", "1");
  uint64_t z = b.Add('+', 1, "z", "26");
  uint64_t end = b.Add('+', 1, "m", "uncommitted");  // everything from here is uncommitted
  std::vector<uint64_t> dp(32, 0);
  dp[0] = a;
  b.SetPtrs(b.dummy(), dp);
  b.SetPtrs(a, {z, end});  // end >= current_size: ignored
  b.SetPtrs(end, {z, 0});
  b.SetPtrs(z, {0, 0});
  auto r = ReadTwoskip(b.Finish(2, end, /*flags=*/1), "t.db");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(*r, (KvList{{"a", "1"}, {"z", "26"}}));
}

TEST(Twoskip, EmptyDatabase) {
  TwoskipBuilder b;
  auto r = ReadTwoskip(b.Finish(0), "t.db");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->empty());
}

// ---- skiplist

TEST(SkiplistCorrupt, UncommittedTailNeedsRecovery) {
  std::string db = ReadFixture("cyrusdb-3.6.1/skiplist.db");
  auto r = ReadSkiplist(db.substr(0, db.size() - 4), "s.db");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition) << r.error().ToString();
  EXPECT_NE(r.error().message().find("at offset " + std::to_string(db.size() - 4)),
            std::string::npos);
}

TEST(SkiplistCorrupt, TruncationsAndFlipsNeverCrash) {
  std::string db = ReadFixture("cyrusdb-3.6.1/skiplist.db");
  for (size_t n = 0; n < db.size(); ++n) {
    (void)ReadSkiplist(db.substr(0, n), "s.db");
  }
  for (size_t i = 0; i < db.size(); ++i) {
    std::string bad = db;
    bad[i] ^= 0x5a;
    (void)ReadSkiplist(bad, "s.db");
  }
  std::string bad = db;
  bad[3] = 0;
  ExpectCorruptionAt(ReadSkiplist(bad, "s.db"), 0);
}

// ---- flat

TEST(Flat, DecodesEscapes) {
  std::string f = std::string("a\xff\x80z\tv\xff\x8a\xff\xff\n") + "b\t\n";
  auto r = ReadFlat(f, "f");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(*r, (KvList{{std::string("a\0z", 3), "v\n\xff"}, {"b", ""}}));
}

TEST(Flat, MalformedLinesNameOffset) {
  ExpectCorruptionAt(ReadFlat("a\tb\nnotab\n", "f"), 4);
  ExpectCorruptionAt(ReadFlat("a\tb\nc\td", "f"), 4);
  auto empty = ReadFlat("", "f");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(Cyrusdb, DetectsFormats) {
  EXPECT_EQ(DetectDbFormat(""), DbFormat::kFlat);
  EXPECT_EQ(DetectDbFormat("key\tvalue\n"), DbFormat::kFlat);
  EXPECT_EQ(DetectDbFormat(std::string("\xa1\x02\x8b\x0d"
                                       "berkeley",
                                       12)),
            DbFormat::kUnknown);
  auto r = ReadCyrusDb(std::string("\xa1\x02\x8b\x0dsomething else", 18), "x.db");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
}

}  // namespace
}  // namespace cyrsync::cyrus
