#include "cyrus/index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/env.h"
#include "common/hash.h"
#include "cyrus/header.h"

namespace cyrsync::cyrus {
namespace {

using ::testing::HasSubstr;

// Test-side description of each version, written from cyrus-formats.md §4 independently of
// index.cc's table, so a typo in one is caught by the other.
struct Version {
  uint32_t minor;
  uint32_t hdr;
  uint32_t rec;
};
const Version kVersions[] = {{6, 76, 60},    {7, 76, 72},    {8, 92, 80},    {9, 96, 80},
                             {10, 96, 88},   {12, 128, 96},  {13, 128, 104}, {14, 160, 104},
                             {15, 160, 104}, {16, 160, 112}, {17, 160, 112}, {19, 160, 112},
                             {20, 192, 144}};

Version VersionOf(uint32_t minor) {
  for (const Version& v : kVersions) {
    if (v.minor == minor) return v;
  }
  ADD_FAILURE() << "no test version " << minor;
  return {};
}

void Put32(std::string* b, size_t off, uint32_t v) {
  std::string tmp;
  AppendBE32(&tmp, v);
  b->replace(off, 4, tmp);
}
void Put64(std::string* b, size_t off, uint64_t v) {
  std::string tmp;
  AppendBE64(&tmp, v);
  b->replace(off, 8, tmp);
}
void SealCrc(std::string* block) {
  Put32(block, block->size() - 4, Crc32(std::string_view(*block).substr(0, block->size() - 4)));
}

struct HeaderValues {
  uint32_t generation = 7;
  uint32_t num_records = 0;
  uint32_t last_uid = 0;
  uint32_t uidvalidity = 1700000000;
  uint32_t options = 0x4;
  uint32_t exists = 0;
  uint64_t highestmodseq = 0x100000005;
  uint32_t header_file_crc = 0xdeadbeef;
  uint64_t quota_used = 0x123456789;
};

std::string BuildHeader(uint32_t minor, const HeaderValues& hv) {
  Version v = VersionOf(minor);
  std::string b(v.hdr, '\0');
  Put32(&b, 0, hv.generation);
  Put32(&b, 8, minor);
  Put32(&b, 12, v.hdr);
  Put32(&b, 16, v.rec);
  Put32(&b, 20, hv.num_records);
  Put64(&b, 32, hv.quota_used);
  if (minor == 20) {
    Put32(&b, 88, hv.last_uid);
    Put32(&b, 92, hv.uidvalidity);
  } else {
    Put32(&b, 28, hv.last_uid);
    Put32(&b, 44, hv.uidvalidity);
  }
  bool late = minor >= 19;  // v19/v20 rearranged everything after offset 59
  Put32(&b, late ? 64 : 60, hv.options);
  if (minor >= 8) Put64(&b, late ? 72 : 68, hv.highestmodseq);
  if (minor >= 12) {
    Put32(&b, late ? 60 : 84, hv.exists);
    Put32(&b, 96, hv.header_file_crc);
    SealCrc(&b);
  }
  return b;
}

struct RecordValues {
  uint32_t uid = 1;
  uint64_t internaldate_s = 1600000000;
  uint64_t size = 1234;
  uint32_t system_flags = kFlagSeen | kFlagExpunged;
  std::array<uint32_t, 4> user_flags{0x1, 0, 0x80000000, 0x5};
  uint8_t guid_seed = 0xa0;
  uint64_t modseq = 0x200000009;
};

std::string BuildRecord(uint32_t minor, const RecordValues& rv) {
  Version v = VersionOf(minor);
  std::string b(v.rec, '\0');
  Put32(&b, 0, rv.uid);
  size_t flags_off = 32;
  if (minor == 20) {
    Put64(&b, 8, rv.internaldate_s * 1000000000 + 999999999);  // rounds down to seconds
    Put64(&b, 24, rv.size);
    flags_off = 36;
  } else {
    Put32(&b, 4, static_cast<uint32_t>(rv.internaldate_s));
    Put32(&b, 12, static_cast<uint32_t>(rv.size));
  }
  Put32(&b, flags_off, rv.system_flags);
  for (size_t i = 0; i < 4; ++i) Put32(&b, flags_off + 4 + 4 * i, rv.user_flags[i]);
  if (minor >= 10) {
    for (size_t i = 0; i < 20; ++i) b[60 + i] = static_cast<char>(rv.guid_seed + i);
    Put64(&b, 80, rv.modseq);
  } else if (minor >= 8) {
    Put64(&b, 72, rv.modseq);
  }
  if (minor >= 12) SealCrc(&b);
  return b;
}

std::string BuildIndex(uint32_t minor, const std::vector<RecordValues>& recs,
                       HeaderValues hv = {}) {
  hv.num_records = static_cast<uint32_t>(recs.size());
  hv.last_uid = recs.empty() ? 0 : recs.back().uid;
  hv.exists = hv.num_records;
  std::string b = BuildHeader(minor, hv);
  for (const RecordValues& r : recs) b += BuildRecord(minor, r);
  return b;
}

std::vector<RecordValues> ThreeRecords() {
  std::vector<RecordValues> recs(3);
  recs[0] = RecordValues{.uid = 1, .system_flags = kFlagSeen};
  recs[1] = RecordValues{.uid = 5, .size = 77, .system_flags = kFlagExpunged | kFlagUnlinked};
  recs[2] = RecordValues{.uid = 9, .system_flags = kFlagAnswered | kFlagArchived, .guid_seed = 3};
  return recs;
}

class IndexVersionTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(IndexVersionTest, ParsesHandBuiltImage) {
  uint32_t minor = GetParam();
  std::vector<RecordValues> recs = ThreeRecords();
  std::string bytes = BuildIndex(minor, recs);
  auto r = ParseIndex(bytes, "cyrus.index");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const IndexHeader& h = r->header;
  EXPECT_EQ(h.generation_no, 7u);
  EXPECT_EQ(h.minor_version, minor);
  EXPECT_EQ(h.start_offset, VersionOf(minor).hdr);
  EXPECT_EQ(h.record_size, VersionOf(minor).rec);
  EXPECT_EQ(h.num_records, 3u);
  EXPECT_EQ(h.exists, 3u);
  EXPECT_EQ(h.last_uid, 9u);
  EXPECT_EQ(h.uidvalidity, 1700000000u);
  EXPECT_EQ(h.options, 0x4u);
  EXPECT_EQ(h.quota_mailbox_used, 0x123456789u);
  EXPECT_EQ(h.highestmodseq, minor >= 8 ? 0x100000005u : 0u);
  EXPECT_EQ(h.header_file_crc, minor >= 12 ? 0xdeadbeefu : 0u);
  ASSERT_EQ(r->records.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const IndexRecord& got = r->records[i];
    const RecordValues& want = recs[i];
    EXPECT_EQ(got.uid, want.uid);
    EXPECT_EQ(got.internaldate, static_cast<int64_t>(want.internaldate_s));
    EXPECT_EQ(got.size, want.size);
    EXPECT_EQ(got.system_flags, want.system_flags);
    EXPECT_EQ(got.user_flags, want.user_flags);
    EXPECT_EQ(got.modseq, minor >= 8 ? want.modseq : 0u);
    if (minor >= 10) {
      EXPECT_EQ(got.guid[0], want.guid_seed);
      EXPECT_EQ(got.guid[19], want.guid_seed + 19);
    } else {
      EXPECT_EQ(got.GuidHex(), std::string(40, '0'));  // v7-v9 short GUIDs are ignored
    }
  }
  EXPECT_TRUE(r->records[0].HasFile());
  EXPECT_FALSE(r->records[1].HasFile());
  EXPECT_TRUE(r->records[2].Archived());
}

TEST_P(IndexVersionTest, HeaderOnlyNeedsStartOffsetBytes) {
  uint32_t minor = GetParam();
  std::string bytes = BuildIndex(minor, ThreeRecords());
  auto h = ParseIndexHeader(bytes.substr(0, VersionOf(minor).hdr), "i");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->num_records, 3u);
  // ParseIndex on the same bytes must notice the records are missing.
  EXPECT_FALSE(ParseIndex(bytes.substr(0, VersionOf(minor).hdr), "i").ok());
}

INSTANTIATE_TEST_SUITE_P(AllVersions, IndexVersionTest,
                         ::testing::Values(6u, 7u, 8u, 9u, 10u, 12u, 13u, 14u, 15u, 16u, 17u, 19u,
                                           20u));

TEST(IndexTest, GuidHex) {
  IndexRecord r;
  for (size_t i = 0; i < 20; ++i) r.guid[i] = static_cast<uint8_t>(i * 17);
  EXPECT_EQ(r.GuidHex(), "00112233445566778899aabbccddeeff10213243");
}

TEST(IndexTest, V20WideFields) {
  RecordValues rv{.uid = 3, .internaldate_s = 5000000000, .size = 0x1'0000'0010};
  auto r = ParseIndex(BuildIndex(20, {rv}), "i");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->records[0].internaldate, 5000000000);  // past 2038: needs the 64-bit field
  EXPECT_EQ(r->records[0].size, 0x100000010u);
}

TEST(IndexTest, V10HasNoCrcSoAnyTrailingBytesAreAccepted) {
  std::string bytes = BuildIndex(10, ThreeRecords());
  bytes[bytes.size() - 1] ^= 0x55;  // inside the last record's modseq
  bytes[90] ^= 0x55;                // header spare
  EXPECT_TRUE(ParseIndex(bytes, "i").ok());
}

TEST(IndexTest, EmptyIndexAndTrailingGarbage) {
  std::string bytes = BuildIndex(17, {});
  auto r = ParseIndex(bytes + "junk", "i");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->records.empty());
}

Status ParseError(const std::string& bytes, const IndexParseOptions& opts = {}) {
  auto r = ParseIndex(bytes, "/spool/x/cyrus.index", opts);
  if (r.ok()) return InternalError("parse unexpectedly succeeded");
  return r.error();
}

void ExpectCorruption(const Status& s, const std::string& text) {
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("/spool/x/cyrus.index: "));
  EXPECT_THAT(s.message(), HasSubstr(text));
}

TEST(IndexTest, TruncatedPrefix) {
  ExpectCorruption(ParseError(std::string(10, '\0')), "truncated header (10 bytes");
  ExpectCorruption(ParseError(""), "at offset 0");
}

TEST(IndexTest, TruncatedHeader) {
  std::string bytes = BuildIndex(17, {}).substr(0, 100);
  ExpectCorruption(ParseError(bytes), "truncated header (100 of 160 bytes) at offset 100");
  ExpectCorruption(ParseIndexHeader(bytes, "/spool/x/cyrus.index").status(), "at offset 100");
}

TEST(IndexTest, TruncatedRecordArea) {
  std::string bytes = BuildIndex(16, ThreeRecords());
  bytes.resize(bytes.size() - 10);
  // Record 3 starts at 160 + 2 * 112.
  ExpectCorruption(ParseError(bytes), "record 3 at offset 384: truncated");
}

TEST(IndexTest, NumRecordsOverflow) {
  std::string bytes = BuildIndex(13, ThreeRecords());
  Put32(&bytes, 20, 0xffffffff);
  std::string hdr = bytes.substr(0, 128);
  SealCrc(&hdr);
  bytes.replace(0, 128, hdr);
  Status s = ParseError(bytes);
  ExpectCorruption(s, "record 4 at offset 440: truncated");
  EXPECT_THAT(s.message(), HasSubstr("num_records 4294967295 at offset 20"));
}

TEST(IndexTest, BadRecordCrc) {
  std::string bytes = BuildIndex(12, ThreeRecords());
  bytes[128 + 96 + 5] ^= 0x01;  // record 2, internaldate
  ExpectCorruption(ParseError(bytes), "record 2 at offset 224: CRC mismatch (stored 0x");
  IndexParseOptions no_crc{.verify_crc = false};
  EXPECT_TRUE(ParseIndex(bytes, "i", no_crc).ok());
}

TEST(IndexTest, BadHeaderCrcPerVersion) {
  const std::pair<uint32_t, const char*> cases[] = {
      {12, "header CRC mismatch"}, {13, "at offset 124"}, {17, "at offset 156"},
      {19, "at offset 156"},       {20, "at offset 188"},
  };
  for (const auto& [minor, text] : cases) {
    std::string bytes = BuildIndex(minor, ThreeRecords());
    bytes[44] ^= 0x10;  // a header field covered by the CRC in every version
    ExpectCorruption(ParseError(bytes), text);
    ExpectCorruption(ParseIndexHeader(bytes, "/spool/x/cyrus.index").status(), text);
  }
}

TEST(IndexTest, UnknownVersions) {
  for (uint32_t minor : {0u, 5u, 11u, 18u, 21u, 0x11000000u}) {
    std::string bytes = BuildIndex(17, ThreeRecords());
    Put32(&bytes, 8, minor);
    ExpectCorruption(ParseError(bytes),
                     "unsupported minor version " + std::to_string(minor) + " at offset 8");
  }
}

TEST(IndexTest, StartOffsetDisagreesWithVersion) {
  std::string bytes = BuildIndex(17, ThreeRecords());
  Put32(&bytes, 12, 128);
  ExpectCorruption(ParseError(bytes),
                   "start_offset 128 disagrees with minor version 17 (expected 160) at offset 12");
}

TEST(IndexTest, RecordSizeDisagreesWithVersion) {
  std::string bytes = BuildIndex(13, ThreeRecords());
  Put32(&bytes, 16, 112);
  ExpectCorruption(ParseError(bytes),
                   "record_size 112 disagrees with minor version 13 (expected 104) at offset 16");
  Put32(&bytes, 16, 0);
  ExpectCorruption(ParseError(bytes), "at offset 16");
}

// num_records claims all three records, so every proper prefix must be rejected cleanly.
TEST(IndexTest, EveryTruncationIsRejected) {
  for (uint32_t minor : {10u, 17u, 20u}) {
    std::string bytes = BuildIndex(minor, ThreeRecords());
    for (size_t n = 0; n < bytes.size(); ++n) {
      auto r = ParseIndex(bytes.substr(0, n), "i");
      ASSERT_FALSE(r.ok()) << "minor " << minor << " prefix " << n;
      EXPECT_EQ(r.error().code(), Code::kCorruption);
      EXPECT_THAT(r.error().message(), HasSubstr("at offset"));
    }
  }
}

// In v17 every byte is covered by the header or a record CRC (version and size words are also
// checked against the template), so every single-bit flip must be reported.
TEST(IndexTest, EveryBitFlipInV17IsDetected) {
  std::string good = BuildIndex(17, ThreeRecords());
  for (size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      auto r = ParseIndex(bad, "i");
      ASSERT_FALSE(r.ok()) << "flip at byte " << i << " bit " << bit;
      EXPECT_EQ(r.error().code(), Code::kCorruption);
    }
  }
}

// --- Golden fixture from a real Cyrus 3.6.1 (tests/data/make_cyrus_fixtures.sh) ---

struct Expected {
  std::map<std::string, std::string> scalars;
  struct Record {
    uint32_t uid;
    uint64_t size;
    std::string sha1;
    std::string modseq;        // "-" when expunged
    std::string internaldate;  // "-" when expunged
    std::vector<std::string> flags;
  };
  std::vector<Record> records;
};

Expected ParseExpected(const std::string& text) {
  Expected e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string key;
    words >> key;
    if (key != "record") {
      words >> e.scalars[key];
      continue;
    }
    Expected::Record r;
    words >> r.uid >> r.size >> r.sha1 >> r.modseq >> r.internaldate;
    for (std::string f; words >> f;) r.flags.push_back(f);
    e.records.push_back(r);
  }
  return e;
}

std::string FixtureDir() {
  const char* src = std::getenv("CYRSYNC_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/data/cyrus-3.6.1/";
}

std::string ReadFixture(const std::string& name) {
  auto r = ReadFileToString(Env::Default(), FixtureDir() + name);
  EXPECT_TRUE(r.ok()) << r.status().ToString()
                      << " (CYRSYNC_SOURCE_DIR is set by ctest; regenerate with "
                         "tests/data/make_cyrus_fixtures.sh)";
  return r.ok() ? *r : std::string();
}

uint32_t SystemFlagBit(const std::string& name) {
  static const std::map<std::string, uint32_t> kBits = {
      {"\\Answered", kFlagAnswered}, {"\\Flagged", kFlagFlagged}, {"\\Deleted", kFlagDeleted},
      {"\\Draft", kFlagDraft},       {"\\Seen", kFlagSeen},       {"EXPUNGED", kFlagExpunged}};
  auto it = kBits.find(name);
  return it == kBits.end() ? 0 : it->second;
}

// Builds the expected user_flags words from flag names via the header's slot table.
std::array<uint32_t, 4> UserFlagWords(const std::vector<std::string>& flags,
                                      const std::vector<std::string>& slots) {
  std::array<uint32_t, 4> words{};
  for (const std::string& f : flags) {
    if (SystemFlagBit(f) != 0) continue;
    auto it = std::find(slots.begin(), slots.end(), f);
    EXPECT_NE(it, slots.end()) << "user flag " << f << " not in cyrus.header";
    if (it == slots.end()) continue;
    size_t slot = static_cast<size_t>(it - slots.begin());
    words[slot / 32] |= 1u << (slot % 32);
  }
  return words;
}

void CheckGoldenRecord(const IndexRecord& got, const Expected::Record& want,
                       const MailboxHeader& mh) {
  SCOPED_TRACE("uid " + std::to_string(want.uid));
  EXPECT_EQ(got.uid, want.uid);
  EXPECT_EQ(got.size, want.size);
  EXPECT_EQ(got.GuidHex(), want.sha1);
  EXPECT_TRUE(got.HasFile());  // delayed expunge keeps the file
  bool expunged = want.flags == std::vector<std::string>{"EXPUNGED"};
  if (expunged) {
    // IMAP cannot show an expunged message; only the state bit is known.
    EXPECT_NE(got.system_flags & kFlagExpunged, 0u);
    return;
  }
  uint32_t sys = 0;
  for (const std::string& f : want.flags) sys |= SystemFlagBit(f);
  EXPECT_EQ(got.system_flags, sys);
  EXPECT_EQ(got.user_flags, UserFlagWords(want.flags, mh.user_flags));
  EXPECT_EQ(std::to_string(got.modseq), want.modseq);
  EXPECT_EQ(std::to_string(got.internaldate), want.internaldate);
}

TEST(IndexGoldenTest, Cyrus361Fixture) {
  std::string index_bytes = ReadFixture("cyrus.index");
  std::string header_bytes = ReadFixture("cyrus.header");
  Expected want = ParseExpected(ReadFixture("expected.txt"));
  ASSERT_FALSE(want.records.empty());

  auto mh = ParseMailboxHeader(header_bytes, "cyrus.header");
  ASSERT_TRUE(mh.ok()) << mh.status().ToString();
  EXPECT_EQ(mh->name, want.scalars["mailbox_name"]);
  EXPECT_EQ(mh->uniqueid, want.scalars["uniqueid"]);

  auto idx = ParseIndex(index_bytes, "cyrus.index");
  ASSERT_TRUE(idx.ok()) << idx.status().ToString();
  const IndexHeader& h = idx->header;
  EXPECT_EQ(std::to_string(h.minor_version), want.scalars["minor_version"]);
  EXPECT_EQ(std::to_string(h.uidvalidity), want.scalars["uidvalidity"]);
  EXPECT_EQ(std::to_string(h.last_uid), want.scalars["last_uid"]);
  EXPECT_EQ(std::to_string(h.exists), want.scalars["exists"]);
  EXPECT_EQ(std::to_string(h.highestmodseq), want.scalars["highestmodseq"]);
  EXPECT_EQ(std::to_string(h.num_records), want.scalars["num_records"]);
  // Cyrus stores the CRC32 of cyrus.header in the index header (v12+).
  EXPECT_EQ(h.header_file_crc, Crc32(header_bytes));

  ASSERT_EQ(idx->records.size(), want.records.size());
  for (size_t i = 0; i < want.records.size(); ++i) {
    CheckGoldenRecord(idx->records[i], want.records[i], *mh);
  }
}

TEST(IndexGoldenTest, Cyrus361FixtureDetectsCorruption) {
  std::string bytes = ReadFixture("cyrus.index");
  ASSERT_GT(bytes.size(), 160u + 112u);
  bytes[160 + 112 + 12] ^= 0x01;  // record 2's size
  auto r = ParseIndex(bytes, "cyrus.index");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("cyrus.index: record 2 at offset 272: CRC mismatch"));
}

}  // namespace
}  // namespace cyrsync::cyrus
