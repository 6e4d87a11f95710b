#include "common/hash.h"

#include <gtest/gtest.h>

namespace cyrsync {
namespace {

// Known answers: Cyrus's record CRCs and the frame CRC are the standard CRC-32 (zlib's).
TEST(HashTest, Crc32KnownAnswersAndChaining) {
  EXPECT_EQ(Crc32(""), 0u);
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(Crc32("6789", Crc32("12345")), 0xCBF43926u);
  std::string big(3 << 20, 'x');
  EXPECT_EQ(Crc32(big.substr(1 << 20), Crc32(big.substr(0, 1 << 20))), Crc32(big));
}

TEST(HashTest, Sha1KnownAnswers) {
  EXPECT_EQ(Sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(Sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  Sha1Hasher h;
  h.Update("a");
  h.Update("bc");
  auto d = h.Finish();
  EXPECT_EQ(HexEncode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size())),
            "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(HexEncode(d), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

}  // namespace
}  // namespace cyrsync
