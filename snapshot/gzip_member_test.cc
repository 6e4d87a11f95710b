#include "snapshot/gzip_member.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include "snapshot/archive_test_util.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::snapshot {
namespace {

using ::testing::HasSubstr;

std::string Member(std::string_view data, int level = 1) {
  auto d = MemberDeflater::Create(level);
  EXPECT_TRUE(d.ok());
  EXPECT_TRUE((*d)->Add(data).ok());
  EXPECT_TRUE((*d)->Finish().ok());
  EXPECT_EQ((*d)->total_in(), data.size());
  return (*d)->TakeOutput();
}

struct Read {
  MemberOutcome outcome;
  std::string data;
};

Read InflateAt(ReadableFile* f, FileCursor* cur) {
  auto inflater = MemberInflater::Create();
  Read r;
  r.outcome = InflateMember(cur, inflater->get(), [&](std::string_view s) {
    r.data.append(s);
    return Result<SinkAction>(SinkAction::kContinue);
  });
  return r;
}

std::string Noise(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (char& c : s) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

TEST(GzipMemberTest, ConcatenatedMembersAreReadOneAtATime) {
  ::cyrsync::testing::TempDir dir;
  Env* env = Env::Default();
  std::vector<std::string> parts = {"first member", Noise(300000), std::string(1 << 20, 'z')};
  std::string file;
  std::vector<uint64_t> starts;
  for (const auto& p : parts) {
    starts.push_back(file.size());
    file += Member(p);
  }
  testing::WriteWhole(env, dir.Sub("a.gz"), file);
  auto f = env->OpenRead(dir.Sub("a.gz"));
  ASSERT_TRUE(f.ok());
  FileCursor cur(f->get(), 0, FileCursor::kNoLimit, 4096);  // small chunks: members straddle them
  for (size_t i = 0; i < parts.size(); ++i) {
    Read r = InflateAt(f->get(), &cur);
    ASSERT_TRUE(r.outcome.status.ok()) << r.outcome.status.ToString();
    EXPECT_EQ(r.outcome.offset, starts[i]);
    uint64_t end = i + 1 < starts.size() ? starts[i + 1] : file.size();
    EXPECT_EQ(r.outcome.length, end - starts[i]);
    EXPECT_EQ(cur.offset(), end);
    EXPECT_EQ(r.data, parts[i]);
  }
  EXPECT_TRUE(cur.Peek()->empty());
}

TEST(GzipMemberTest, SansIoInflaterTakesOneByteAtATime) {
  std::string m = Member("hello hello hello") + Member("next");
  auto inflater = MemberInflater::Create();
  std::string out;
  size_t at = 0;
  bool end = false;
  while (!end) {
    ASSERT_LT(at, m.size());
    auto step = (*inflater)->Next(std::string_view(m).substr(at, 1));
    ASSERT_TRUE(step.ok());
    at += step->consumed;
    out.append(step->output);
    end = step->member_end;
  }
  EXPECT_EQ(out, "hello hello hello");
  EXPECT_EQ(at, m.size() - Member("next").size());
}

TEST(GzipMemberTest, TruncatedMemberIsFlagged) {
  ::cyrsync::testing::TempDir dir;
  Env* env = Env::Default();
  std::string a = Member("complete"), b = Member(Noise(10000));
  testing::WriteWhole(env, dir.Sub("t.gz"), a + b.substr(0, b.size() / 2));
  auto f = env->OpenRead(dir.Sub("t.gz"));
  FileCursor cur(f->get(), 0);
  EXPECT_TRUE(InflateAt(f->get(), &cur).outcome.status.ok());
  Read r = InflateAt(f->get(), &cur);
  EXPECT_EQ(r.outcome.status.code(), Code::kCorruption);
  EXPECT_TRUE(r.outcome.truncated);
  EXPECT_THAT(r.outcome.status.message(), HasSubstr("offset " + std::to_string(a.size())));
}

TEST(GzipMemberTest, DamagedMemberIsCorruptionNotTruncation) {
  ::cyrsync::testing::TempDir dir;
  Env* env = Env::Default();
  std::string a = Member("complete"), b = Member(Noise(10000));
  b[b.size() - 6] ^= 0x40;  // inside the CRC32 of the trailer
  testing::WriteWhole(env, dir.Sub("d.gz"), a + b);
  auto f = env->OpenRead(dir.Sub("d.gz"));
  FileCursor cur(f->get(), a.size());
  Read r = InflateAt(f->get(), &cur);
  EXPECT_EQ(r.outcome.status.code(), Code::kCorruption);
  EXPECT_FALSE(r.outcome.truncated);
  EXPECT_THAT(r.outcome.status.message(),
              HasSubstr("gzip member at offset " + std::to_string(a.size())));
}

TEST(GzipMemberTest, SinkCanStopEarly) {
  ::cyrsync::testing::TempDir dir;
  Env* env = Env::Default();
  testing::WriteWhole(env, dir.Sub("s.gz"), Member(std::string(1 << 20, 'q')));
  auto f = env->OpenRead(dir.Sub("s.gz"));
  FileCursor cur(f->get(), 0);
  auto inflater = MemberInflater::Create();
  MemberOutcome m = InflateMember(&cur, inflater->get(), [](std::string_view) {
    return Result<SinkAction>(SinkAction::kStop);
  });
  EXPECT_TRUE(m.status.ok());
  EXPECT_TRUE(m.stopped);
  EXPECT_LT(m.uncompressed, uint64_t{1} << 20);
}

TEST(GzipMemberTest, LevelsAndReset) {
  EXPECT_EQ(MemberDeflater::Create(10).status().code(), Code::kInvalidArgument);
  auto d = MemberDeflater::Create(0);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE((*d)->Add("abc").ok());
  ASSERT_TRUE((*d)->Finish().ok());
  EXPECT_FALSE((*d)->Add("x").ok());
  std::string first = (*d)->TakeOutput();
  ASSERT_TRUE((*d)->Reset().ok());
  ASSERT_TRUE((*d)->Add("abc").ok());
  ASSERT_TRUE((*d)->Finish().ok());
  EXPECT_EQ((*d)->TakeOutput(), first);  // deterministic: header mtime 0
  EXPECT_EQ(first.substr(0, 2), "\x1f\x8b");
}

// Text with some repetition followed by noise: both deflate paths (matches and literals).
std::string Mixed(size_t n) {
  std::string s;
  for (int i = 0; s.size() < n / 2; ++i) {
    s += "Received: from host" + std::to_string(i % 97) + ".example.org by mx; line " +
         std::to_string(i) + "\r\n";
  }
  s += Noise(n - s.size());
  return s;
}

// Inflates one gzip member with zlib directly (not through MemberInflater).
std::string ZlibGunzip(const std::string& member) {
  z_stream s{};
  EXPECT_EQ(inflateInit2(&s, 15 + 16), Z_OK);
  std::string out;
  char buf[1 << 16];
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(member.data()));
  s.avail_in = static_cast<uInt>(member.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    s.next_out = reinterpret_cast<Bytef*>(buf);
    s.avail_out = sizeof(buf);
    rc = inflate(&s, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - s.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  EXPECT_EQ(s.avail_in, 0u);  // the member ends exactly at its trailer
  inflateEnd(&s);
  return out;
}

std::string InflateWithMemberInflater(const std::string& member) {
  auto inflater = MemberInflater::Create();
  std::string out;
  size_t at = 0;
  while (true) {
    auto step = (*inflater)->Next(std::string_view(member).substr(at));
    EXPECT_TRUE(step.ok());
    if (!step.ok()) return out;
    at += step->consumed;
    out.append(step->output);
    if (step->member_end) break;
  }
  EXPECT_EQ(at, member.size());
  return out;
}

uint32_t LoadLE32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

TEST(GzipMemberTest, EveryLevelWritesAMemberZlibReads) {
  const std::string data = Mixed(600000);
  for (int level = 0; level <= 9; ++level) {
    SCOPED_TRACE("level " + std::to_string(level));
    const std::string m = Member(data, level);
    ASSERT_GE(m.size(), 18u);
    EXPECT_EQ(m.substr(0, 4), std::string("\x1f\x8b\x08\x00", 4));  // deflate, no flags
    EXPECT_EQ(LoadLE32(m, 4), 0u);                                  // mtime 0
    EXPECT_EQ(LoadLE32(m, m.size() - 8), crc32(0, reinterpret_cast<const Bytef*>(data.data()),
                                               static_cast<uInt>(data.size())));
    EXPECT_EQ(LoadLE32(m, m.size() - 4), data.size());  // ISIZE
    EXPECT_EQ(ZlibGunzip(m), data);
    EXPECT_EQ(InflateWithMemberInflater(m), data);
    if (level > 0) {
      EXPECT_LT(m.size(), data.size());
    }
  }
}

TEST(GzipMemberTest, EmptyMemberIsValid) {
  for (int level : {0, 1, 6, 9}) {
    const std::string m = Member("", level);
    EXPECT_EQ(ZlibGunzip(m), "");
    EXPECT_EQ(InflateWithMemberInflater(m), "");
    EXPECT_EQ(LoadLE32(m, m.size() - 4), 0u);
  }
}

// A member at the archive's member target plus one large entry, as the appender cuts them.
TEST(GzipMemberTest, MemberAtTheSizeLimitRoundTrips) {
  const std::string data = Mixed((size_t{4} << 20) + (size_t{300} << 10));
  const std::string m = Member(data, 1);
  EXPECT_EQ(ZlibGunzip(m), data);
  EXPECT_EQ(InflateWithMemberInflater(m), data);
}

TEST(GzipMemberTest, InputArrivesInPiecesAndResetForgetsALargeMember) {
  auto d = MemberDeflater::Create(1);
  ASSERT_TRUE(d.ok());
  const std::string big = Mixed(size_t{20} << 20);
  for (size_t at = 0; at < big.size(); at += 777777) {
    ASSERT_TRUE((*d)->Add(std::string_view(big).substr(at, 777777)).ok());
  }
  EXPECT_EQ((*d)->total_in(), big.size());
  EXPECT_EQ((*d)->pending_output(), 0u);  // nothing is compressed before Finish
  ASSERT_TRUE((*d)->Finish().ok());
  EXPECT_FALSE((*d)->Finish().ok());
  EXPECT_EQ(ZlibGunzip((*d)->TakeOutput()), big);
  ASSERT_TRUE((*d)->Reset().ok());
  EXPECT_EQ((*d)->total_in(), 0u);
  ASSERT_TRUE((*d)->Add("small").ok());
  ASSERT_TRUE((*d)->Finish().ok());
  EXPECT_EQ(ZlibGunzip((*d)->TakeOutput()), "small");
}

}  // namespace
}  // namespace cyrsync::snapshot
