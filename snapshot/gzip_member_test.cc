#include "snapshot/gzip_member.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace cyrsync::snapshot
