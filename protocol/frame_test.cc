#include "protocol/frame.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/bytes.h"
#include "common/hash.h"

namespace cyrsync::protocol {
namespace {

// Feeds stream to decoder in one call per chunk boundary, collecting frames until an error.
struct Decoded {
  std::vector<Frame> frames;
  Status error;
};

Decoded FeedAll(FrameDecoder& decoder, std::string_view stream, const std::vector<size_t>& cuts) {
  Decoded out;
  size_t begin = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : stream.size();
    std::string_view chunk = stream.substr(begin, end - begin);
    begin = end;
    while (!chunk.empty()) {
      size_t used = 0;
      FrameDecoder::Out r = decoder.Feed(chunk, &used);
      chunk.remove_prefix(used);
      if (r.kind == FrameDecoder::Out::kError) {
        out.error = r.error;
        return out;
      }
      if (r.kind == FrameDecoder::Out::kFrame) {
        out.frames.push_back(Frame{r.type, std::move(r.payload)});
      } else {
        EXPECT_TRUE(chunk.empty()) << "kNeedMore must consume everything";
      }
    }
  }
  return out;
}

std::string HeaderBytes(uint32_t len, uint16_t type, uint16_t flags) {
  std::string h;
  AppendBE32(&h, len);
  AppendBE16(&h, type);
  AppendBE16(&h, flags);
  return h;
}

TEST(FrameTest, EncodeMatchesDocumentedLayout) {
  const std::string f = EncodeFrame(0x0102, "abc");
  ASSERT_EQ(f.size(), 8u + 3 + 4);
  EXPECT_EQ(LoadBE32(f, 0), 3u);
  EXPECT_EQ(LoadBE16(f, 4), 0x0102);
  EXPECT_EQ(LoadBE16(f, 6), 0);
  EXPECT_EQ(f.substr(8, 3), "abc");
  EXPECT_EQ(LoadBE32(f, 11), Crc32(std::string_view(f).substr(0, 11)));
}

TEST(FrameTest, HeaderPayloadTrailerInPiecesEqualTheWholeFrame) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{70000}}) {
    std::string payload(n, 'x');
    for (size_t i = 0; i < n; ++i) payload[i] = static_cast<char>(i * 7);
    std::string out = "prefix";
    const uint32_t crc = AppendFrameHeader(&out, 9, payload);
    out += payload;
    AppendBE32(&out, crc);
    EXPECT_EQ(out, "prefix" + EncodeFrame(9, payload)) << n;
  }
}

TEST(FrameTest, RoundTripIncludingEmptyPayload) {
  FrameDecoder decoder;
  const std::string stream = EncodeFrame(7, "hello") + EncodeFrame(8, "") + EncodeFrame(9, "x");
  Decoded d = FeedAll(decoder, stream, {});
  ASSERT_TRUE(d.error.ok()) << d.error.ToString();
  ASSERT_EQ(d.frames.size(), 3u);
  EXPECT_EQ(d.frames[0].type, 7);
  EXPECT_EQ(d.frames[0].payload, "hello");
  EXPECT_EQ(d.frames[1].type, 8);
  EXPECT_EQ(d.frames[1].payload, "");
  EXPECT_EQ(d.frames[2].payload, "x");
  EXPECT_TRUE(decoder.AtFrameBoundary());
  EXPECT_EQ(decoder.stream_offset(), stream.size());
}

TEST(FrameTest, RandomSplitFeedingYieldsSameFrames) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed=" + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int round = 0; round < 50; ++round) {
    std::vector<Frame> want;
    std::string stream;
    const int n = std::uniform_int_distribution<int>(1, 8)(rng);
    for (int i = 0; i < n; ++i) {
      Frame f;
      f.type = static_cast<uint16_t>(rng());
      f.payload.resize(std::uniform_int_distribution<size_t>(0, 3000)(rng));
      for (char& c : f.payload) c = static_cast<char>(rng());
      stream += EncodeFrame(f.type, f.payload);
      want.push_back(std::move(f));
    }
    std::vector<size_t> cuts;
    for (size_t pos = 0;;) {
      pos += std::uniform_int_distribution<size_t>(1, 40)(rng);
      if (pos >= stream.size()) break;
      cuts.push_back(pos);
    }
    FrameDecoder decoder;
    Decoded d = FeedAll(decoder, stream, cuts);
    ASSERT_TRUE(d.error.ok()) << d.error.ToString();
    ASSERT_EQ(d.frames.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(d.frames[i].type, want[i].type);
      EXPECT_EQ(d.frames[i].payload, want[i].payload);
    }
  }
}

TEST(FrameTest, ByteAtATimeFeeding) {
  FrameDecoder decoder;
  const std::string stream = EncodeFrame(1, "abcdef");
  std::vector<size_t> cuts;
  for (size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  Decoded d = FeedAll(decoder, stream, cuts);
  ASSERT_TRUE(d.error.ok());
  ASSERT_EQ(d.frames.size(), 1u);
  EXPECT_EQ(d.frames[0].payload, "abcdef");
}

TEST(FrameTest, CrcMismatchIsCorruptionNamingOffset) {
  std::string stream = EncodeFrame(1, "first") + EncodeFrame(2, "second");
  const size_t second = 8 + 5 + 4;
  stream[second + 8] ^= 0x01;  // flip a payload bit of the second frame
  FrameDecoder decoder;
  Decoded d = FeedAll(decoder, stream, {});
  ASSERT_EQ(d.frames.size(), 1u);
  EXPECT_EQ(d.error.code(), Code::kCorruption);
  EXPECT_NE(d.error.message().find("CRC"), std::string::npos) << d.error.message();
  EXPECT_NE(d.error.message().find("offset " + std::to_string(second + 8 + 6)), std::string::npos)
      << d.error.message();
}

TEST(FrameTest, OversizeRejectedAfterHeaderBeforePayload) {
  FrameDecoder decoder(1024);
  const std::string header = HeaderBytes(1025, 3, 0);
  size_t used = 0;
  FrameDecoder::Out r = decoder.Feed(header, &used);
  EXPECT_EQ(r.kind, FrameDecoder::Out::kError);
  EXPECT_EQ(used, header.size());
  EXPECT_EQ(r.error.code(), Code::kCorruption);
  EXPECT_NE(r.error.message().find("exceeds limit 1024"), std::string::npos);
  EXPECT_NE(r.error.message().find("offset 0"), std::string::npos);
}

TEST(FrameTest, OversizeHeaderFollowedByBytesConsumesOnlyHeader) {
  FrameDecoder decoder;  // default 8 MiB
  const std::string stream = HeaderBytes((8u << 20) + 1, 3, 0) + std::string(100, 'x');
  size_t used = 0;
  FrameDecoder::Out r = decoder.Feed(stream, &used);
  EXPECT_EQ(r.kind, FrameDecoder::Out::kError);
  EXPECT_EQ(used, kFrameHeaderSize);
}

TEST(FrameTest, ExactLimitIsAccepted) {
  FrameDecoder decoder(16);
  Decoded d = FeedAll(decoder, EncodeFrame(1, std::string(16, 'a')), {});
  ASSERT_TRUE(d.error.ok()) << d.error.ToString();
  ASSERT_EQ(d.frames.size(), 1u);
}

TEST(FrameTest, NonZeroFlagsRejected) {
  std::string stream = EncodeFrame(1, "ok") + HeaderBytes(0, 1, 0x0100);
  FrameDecoder decoder;
  Decoded d = FeedAll(decoder, stream, {});
  ASSERT_EQ(d.frames.size(), 1u);
  EXPECT_EQ(d.error.code(), Code::kCorruption);
  EXPECT_NE(d.error.message().find("offset " + std::to_string(14 + 6)), std::string::npos)
      << d.error.message();
}

TEST(FrameTest, ErrorIsSticky) {
  FrameDecoder decoder(4);
  size_t used = 0;
  ASSERT_EQ(decoder.Feed(HeaderBytes(5, 1, 0), &used).kind, FrameDecoder::Out::kError);
  FrameDecoder::Out again = decoder.Feed(EncodeFrame(1, "ok"), &used);
  EXPECT_EQ(again.kind, FrameDecoder::Out::kError);
  EXPECT_EQ(used, 0u);
  EXPECT_FALSE(decoder.AtFrameBoundary());
}

TEST(FrameTest, PartialFrameIsNotAtBoundary) {
  FrameDecoder decoder;
  const std::string f = EncodeFrame(1, "abc");
  size_t used = 0;
  EXPECT_EQ(decoder.Feed(std::string_view(f).substr(0, 5), &used).kind,
            FrameDecoder::Out::kNeedMore);
  EXPECT_EQ(used, 5u);
  EXPECT_FALSE(decoder.AtFrameBoundary());
}

TEST(PayloadTest, RoundTrip) {
  PayloadWriter w;
  w.PutU8(0xfe).PutU16(0xbeef).PutU32(0xdeadbeef).PutU64(0x0102030405060708ull).PutI64(-42);
  w.PutString("mailbox").PutString("").PutBytes("raw");
  const std::string p = w.Take();
  EXPECT_EQ(w.size(), 0u);
  PayloadReader r(p);
  EXPECT_EQ(*r.U8(), 0xfe);
  EXPECT_EQ(*r.U16(), 0xbeef);
  EXPECT_EQ(*r.U32(), 0xdeadbeefu);
  EXPECT_EQ(*r.U64(), 0x0102030405060708ull);
  EXPECT_EQ(*r.I64(), -42);
  EXPECT_EQ(*r.String(), "mailbox");
  EXPECT_EQ(*r.String(), "");
  EXPECT_EQ(*r.Bytes(3), "raw");
  EXPECT_TRUE(r.AtEnd());
  EXPECT_TRUE(r.ExpectEnd().ok());
}

TEST(PayloadTest, TruncatedIntegersAreCorruptionNamingOffset) {
  PayloadReader r(std::string_view("\x01\x02\x03", 3));
  ASSERT_TRUE(r.U8().ok());
  Result<uint32_t> u32 = r.U32();
  ASSERT_FALSE(u32.ok());
  EXPECT_EQ(u32.error().code(), Code::kCorruption);
  EXPECT_NE(u32.error().message().find("offset 1"), std::string::npos) << u32.error().message();
  EXPECT_EQ(r.offset(), 1u) << "a failed read must not move the position";
  EXPECT_FALSE(r.U64().ok());
  EXPECT_FALSE(r.I64().ok());
  EXPECT_TRUE(r.U16().ok());
  EXPECT_FALSE(r.U8().ok());
  EXPECT_FALSE(PayloadReader("").U16().ok());
}

TEST(PayloadTest, TruncatedStringIsCorruption) {
  PayloadWriter w;
  w.PutU32(10).PutBytes("short");
  const std::string p = w.Take();
  PayloadReader r(p);
  Result<std::string> s = r.String();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Code::kCorruption);
  EXPECT_NE(s.error().message().find("offset 0"), std::string::npos);
  EXPECT_EQ(r.offset(), 0u);
  EXPECT_FALSE(PayloadReader(std::string_view("\0\0", 2)).String().ok());
}

TEST(PayloadTest, StringOverLimitIsCorruption) {
  PayloadWriter w;
  w.PutString("0123456789");
  const std::string p = w.Take();
  PayloadReader r(p);
  Result<std::string> s = r.String(9);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Code::kCorruption);
  EXPECT_NE(s.error().message().find("exceeds limit 9"), std::string::npos);
  EXPECT_EQ(*r.String(10), "0123456789");
}

TEST(PayloadTest, HugeLengthDoesNotOverflow) {
  PayloadWriter w;
  w.PutU32(0xffffffffu);
  const std::string p = w.Take();
  PayloadReader r(p);
  EXPECT_FALSE(r.String(std::numeric_limits<size_t>::max()).ok());
  PayloadReader r2(p);
  EXPECT_FALSE(r2.Bytes(std::numeric_limits<size_t>::max()).ok());
}

TEST(PayloadTest, ExpectEndReportsTrailingBytes) {
  PayloadReader r(std::string_view("\x01\x02", 2));
  ASSERT_TRUE(r.U8().ok());
  Status st = r.ExpectEnd();
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_NE(st.message().find("1 trailing bytes at offset 1"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace cyrsync::protocol
