// Bodies on the wire: DATA* DATA_END and the digest DATA_END carries (doc/formats/protocol.md).
#include "protocol/transport.h"

#include <gtest/gtest.h>

#include "common/hash.h"
#include "protocol/messages.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::protocol {
namespace {

const std::string kBody = std::string(3 * kDataChunk / 2, 'm') + "end";  // two DATA frames

TEST(TransportBodyTest, ABodyCarriesItsSha1AndTheReceiverReportsIt) {
  auto [a, b] = MakePipePair();
  ASSERT_TRUE(SendBody(*a, kBody).ok());
  std::string sha1;
  auto got = ReceiveBodyToString(*b, 1 << 22, &sha1);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, kBody);
  EXPECT_EQ(sha1, Sha1Hex(kBody));
}

TEST(TransportBodyTest, ABodyWithoutDigestIsAcceptedOnlyWhereTheReceiverSaysSo) {
  auto [a, b] = MakePipePair();
  ASSERT_TRUE(SendBody(*a, kBody, Digest::kNone).ok());
  auto refused = ReceiveBodyToString(*b, 1 << 22);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), Code::kCorruption);

  ASSERT_TRUE(SendBody(*a, kBody, Digest::kNone).ok());
  std::string sha1;
  auto got = ReceiveBodyToString(*b, 1 << 22, &sha1, DigestRule::kOptional);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, kBody);
  EXPECT_EQ(sha1, Sha1Hex(kBody));  // computed by the receiver, for the caller's own check
}

TEST(TransportBodyTest, AWrongDigestFailsEvenWhereADigestIsOptional) {
  auto [a, b] = MakePipePair();
  ASSERT_TRUE(a->Send(kData, "abc").ok());
  ASSERT_TRUE(a->Send(kDataEnd, EncodeString(Sha1Hex("abd"))).ok());
  auto got = ReceiveBodyToString(*b, 1 << 20, nullptr, DigestRule::kOptional);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
}

TEST(TransportBodyTest, AFileBodyWithoutDigestEndsWithAnEmptyOne) {
  cyrsync::testing::TempDir dir;
  const std::string path = JoinPath(dir.path(), "7.");
  ASSERT_TRUE(AtomicWriteFile(Env::Default(), path, kBody, {}).ok());
  auto file = Env::Default()->OpenRead(path);
  ASSERT_TRUE(file.ok());
  auto [a, b] = MakePipePair();
  auto sent = SendFileBody(*a, **file, Digest::kNone);
  ASSERT_TRUE(sent.ok());
  EXPECT_EQ(*sent, kBody.size());
  std::string data;
  while (true) {
    auto f = b->Receive();
    ASSERT_TRUE(f.ok());
    if (f->type == kDataEnd) {
      EXPECT_EQ(DecodeString(f->payload).value(), "");
      break;
    }
    ASSERT_EQ(f->type, kData);
    data += f->payload;
  }
  EXPECT_EQ(data, kBody);
}

}  // namespace
}  // namespace cyrsync::protocol
