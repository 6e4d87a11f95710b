#include "snapshot/tar.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

namespace cyrsync::snapshot {
namespace {

using ::testing::HasSubstr;

struct Parsed {
  TarHeader header;
  uint64_t data_offset = 0;
  std::string data;
};

std::string Encode(const TarHeader& h, std::string_view data) {
  auto hdr = EncodeTarHeader(h);
  EXPECT_TRUE(hdr.ok()) << hdr.status().ToString();
  return *hdr + std::string(data) + std::string(TarPadding(data.size()));
}

// Feeds the stream in pieces of `piece` bytes and collects every entry.
Result<std::vector<Parsed>> ParseAll(std::string_view stream, size_t piece) {
  TarParser p;
  std::vector<Parsed> out;
  bool in_entry = false;
  for (size_t at = 0; at < stream.size() || in_entry;) {
    std::string_view in = stream.substr(at, std::min(piece, stream.size() - at));
    ASSIGN_OR_RETURN(TarParser::Step s, p.Next(in));
    at += s.consumed;
    switch (s.event) {
      case TarParser::Event::kHeader:
        out.push_back({p.header(), p.data_offset(), ""});
        in_entry = true;
        break;
      case TarParser::Event::kData:
        out.back().data.append(s.data);
        break;
      case TarParser::Event::kEntryEnd:
        in_entry = false;
        break;
      case TarParser::Event::kNeedMore:
        if (at >= stream.size() && in_entry) return CorruptionError("stream ends inside entry");
        break;
    }
  }
  if (!p.AtEntryBoundary()) return CorruptionError("not at boundary");
  return out;
}

std::vector<std::pair<TarHeader, std::string>> Samples() {
  std::string long_name = "folders/" + std::string(120, 'u') + "/cyrus.index";
  std::string name100(100, 'n');
  return {
      {{"files/abc", EntryKind::kFile, "", 5, 1700000000, 0600}, "hello"},
      {{"empty", EntryKind::kFile, "", 0, 1, 0644}, ""},
      {{"block", EntryKind::kFile, "", 512, 2, 0600}, std::string(512, 'b')},
      {{name100, EntryKind::kFile, "", 3, 3, 0600}, "abc"},
      {{long_name, EntryKind::kFile, "", 700, 4, 0600}, std::string(700, 'x')},
      {{"imap/INBOX", EntryKind::kSymlink, "uid-1", 0, 5, 0777}, ""},
      {{"imap/" + std::string(150, 'L'), EntryKind::kSymlink, std::string(130, 't'), 0, 6, 0777},
       ""},
      {{"imap/Trash", EntryKind::kSymlink, "/dev/null", 0, 7, 0777}, ""},
      {{"old", EntryKind::kFile, "", 1, -86400, 0600}, "o"},               // before 1970: PAX mtime
      {{"future", EntryKind::kFile, "", 1, int64_t{1} << 34, 0600}, "f"},  // past 11 octal digits
  };
}

TEST(TarTest, RoundTripAnySplit) {
  std::string stream;
  for (const auto& [h, data] : Samples()) stream += Encode(h, data);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{512}, size_t{100000}}) {
    auto got = ParseAll(stream, piece);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    auto samples = Samples();
    ASSERT_EQ(got->size(), samples.size());
    for (size_t i = 0; i < samples.size(); ++i) {
      const TarHeader& want = samples[i].first;
      const TarHeader& h = (*got)[i].header;
      EXPECT_EQ(h.name, want.name);
      EXPECT_EQ(h.kind, want.kind);
      EXPECT_EQ(h.link_target, want.link_target);
      EXPECT_EQ(h.size, want.size);
      EXPECT_EQ(h.mtime, want.mtime);
      EXPECT_EQ(h.mode, want.mode);
      EXPECT_EQ((*got)[i].data, samples[i].second);
      EXPECT_EQ((*got)[i].data_offset % kTarBlockSize, 0u);
    }
  }
}

TEST(TarTest, ShortNamesArePlainUstarLongOnesGetPax) {
  auto plain = EncodeTarHeader({"files/abc", EntryKind::kFile, "", 5, 10, 0600});
  ASSERT_TRUE(plain.ok());
  ASSERT_EQ(plain->size(), kTarBlockSize);
  EXPECT_EQ(plain->substr(257, 8), std::string("ustar\0"
                                               "00",
                                               8));
  EXPECT_EQ((*plain)[156], '0');
  EXPECT_EQ(plain->substr(108, 8), std::string("0000000\0", 8));  // uid 0
  EXPECT_EQ(plain->substr(265, 32), std::string(32, '\0'));       // uname empty
  auto pax = EncodeTarHeader({std::string(101, 'p'), EntryKind::kFile, "", 5, 10, 0600});
  ASSERT_TRUE(pax.ok());
  EXPECT_EQ((*pax)[156], 'x');
  EXPECT_THAT(*pax, HasSubstr("path=" + std::string(101, 'p') + "\n"));
  EXPECT_EQ(pax->size(), 3 * kTarBlockSize);
}

TEST(TarTest, EncoderRejectsWhatTarCannotRestore) {
  EXPECT_EQ(EncodeTarHeader({"", EntryKind::kFile}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(EncodeTarHeader({"l", EntryKind::kSymlink, ""}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(EncodeTarHeader({std::string("a\0b", 3), EntryKind::kFile}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(EncodeTarHeader({"l", EntryKind::kSymlink, "t", 3}).status().code(),
            Code::kInvalidArgument);
}

TEST(TarTest, BadChecksumIsCorruptionNamingOffset) {
  std::string stream = Encode({"a", EntryKind::kFile, "", 3, 1, 0600}, "abc") +
                       Encode({"b", EntryKind::kFile, "", 3, 1, 0600}, "def");
  stream[1024 + 10] ^= 1;  // inside the second header's name
  auto got = ParseAll(stream, 4096);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kCorruption);
  EXPECT_THAT(got.status().message(), HasSubstr("checksum at offset 1024"));
}

TEST(TarTest, EndOfArchiveBlockIsCorruption) {
  std::string stream = Encode({"a", EntryKind::kFile, "", 1, 1, 0600}, "x") + std::string(1024, 0);
  auto got = ParseAll(stream, 4096);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("end-of-archive block at offset 1024"));
}

TEST(TarTest, UnsupportedTypeAndMalformedPax) {
  std::string dir = Encode({"d", EntryKind::kFile, "", 0, 1, 0755}, "");
  dir[156] = '5';
  // Re-seal the checksum so only the type is wrong.
  uint32_t sum = 0;
  for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : (unsigned char)dir[i];
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%06o", sum);
  dir.replace(148, 6, buf, 6);
  auto got = ParseAll(dir, 4096);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("unsupported entry type '5'"));

  std::string pax = Encode({std::string(120, 'p'), EntryKind::kFile, "", 0, 1, 0600}, "");
  pax[512] = '9';  // record length no longer matches
  got = ParseAll(pax, 4096);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("PAX record at offset 512"));
}

// H5 stand-in until tests/fuzz/fuzz_tar_reader.cc exists: random damage must give a clean
// error or a parse, never a crash, hang or huge allocation.
TEST(TarTest, RandomDamageNeverCrashes) {
  std::string stream;
  for (const auto& [h, data] : Samples()) stream += Encode(h, data);
  const uint32_t seed = 20240611;
  std::mt19937 rng(seed);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = stream;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) s[rng() % s.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) s.resize(rng() % s.size());
    auto got = ParseAll(s, 1 + rng() % 1000);
    if (!got.ok()) {
      EXPECT_EQ(got.status().code(), Code::kCorruption) << "seed " << seed << " iter " << iter;
    }
  }
}

}  // namespace
}  // namespace cyrsync::snapshot
