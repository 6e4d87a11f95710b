// Wire format of the message payloads (doc/formats/protocol.md, version 2): golden bytes for
// representative messages, so an accidental change of the encoding fails here, and round trips
// plus rejection of trailing or missing bytes for every decoder.
#include "protocol/messages.h"

#include <gtest/gtest.h>

#include "common/hash.h"

namespace cyrsync::protocol {
namespace {

std::string Hex(std::string_view s) { return HexEncode(s); }

TEST(MessagesGoldenTest, Hello) {
  // str "CYRSYNC", u32 2, str "sync"
  EXPECT_EQ(Hex(Encode(Hello{})), "0000000743595253594e43" "00000003" "0000000473796e63");
}

TEST(MessagesGoldenTest, MessagePut) {
  // u32 uid, u8 archived, u64 size
  EXPECT_EQ(Hex(Encode(MessagePut{7, true, 0x0102})), "00000007" "01" "0000000000000102");
}

TEST(MessagesGoldenTest, MessagesFetch) {
  // str folder_key, u32 n, n x (u32 uid, u8 archived)
  EXPECT_EQ(Hex(Encode(MessagesFetch{"ab", {{1, false}, {258, true}}})),
            "000000026162" "00000002" "0000000100" "0000010201");
}

TEST(MessagesGoldenTest, RestoreDoneAndPath) {
  EXPECT_EQ(Hex(Encode(RestoreDone{"u1", 3})), "000000027531" "00000003");
  EXPECT_EQ(Hex(EncodePath({"sievedir", "a/b"})), "000000087369657665646972" "00000003612f62");
}

TEST(MessagesGoldenTest, StateFile) {
  // str name, rooted path, u8 kind, stat tuple (u64 size, i64 mtime_ns, i64 ctime_ns, u64 ino),
  // str target
  StateFile sf{"cyrus.index", {"r", "x"}, EntryKind::kSymlink, {1, -1, 2, 3}, "t"};
  EXPECT_EQ(Hex(Encode(sf)),
            "0000000b63797275732e696e646578" "0000000172" "0000000178" "02"
            "0000000000000001" "ffffffffffffffff" "0000000000000002" "0000000000000003"
            "0000000174");
}

TEST(MessagesRoundTripTest, EveryDecoderReadsWhatItsEncoderWrote) {
  {
    auto back = DecodeMessagesFetch(Encode(MessagesFetch{"k", {{5, true}, {6, false}}}));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->folder_key, "k");
    ASSERT_EQ(back->messages.size(), 2u);
    EXPECT_EQ(back->messages[0], std::make_pair(5u, true));
  }
  {
    auto back = DecodeRestoreDone(Encode(RestoreDone{"id", 9}));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->uniqueid, "id");
    EXPECT_EQ(back->messages, 9u);
  }
  {
    auto back = DecodeMessagePut(Encode(MessagePut{1, false, 99}));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->size, 99u);
  }
  {
    PassDone pd{{"alice", "bob"}, 1234};
    auto back = DecodePassDone(Encode(pd));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->users, pd.users);
    EXPECT_EQ(back->time, 1234);
  }
  {
    auto back = DecodeHello(Encode(Hello{}));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->mode, "sync");
  }
}

TEST(MessagesRoundTripTest, TrailingOrMissingBytesAreRejected) {
  const std::string p = Encode(MessagesFetch{"k", {{5, true}}});
  EXPECT_FALSE(DecodeMessagesFetch(p + "x").ok());
  EXPECT_FALSE(DecodeMessagesFetch(p.substr(0, p.size() - 1)).ok());
  const std::string r = Encode(RestoreDone{"id", 9});
  EXPECT_FALSE(DecodeRestoreDone(r + "x").ok());
  EXPECT_FALSE(DecodeRestoreDone(r.substr(0, r.size() - 1)).ok());
}

TEST(MessagesRoundTripTest, MessagesFetchCountIsBounded) {
  MessagesFetch m{"k", {}};
  for (size_t i = 0; i <= kMaxMessagesPerFetch; ++i) m.messages.emplace_back(i, false);
  EXPECT_EQ(DecodeMessagesFetch(Encode(m)).status().code(), Code::kCorruption);
  m.messages.pop_back();
  EXPECT_TRUE(DecodeMessagesFetch(Encode(m)).ok());
}

TEST(MessagesGoldenTest, FolderCheckAndResult) {
  // u32 n, n x (str folder_key, rooted path data_dir, rooted path archive_dir)
  FolderCheck c{{{"k", {"p", "d"}, {"q", "e"}}}};
  EXPECT_EQ(Hex(Encode(c)), "00000001" "000000016b" "0000000170" "0000000164" "0000000171"
                            "0000000165");
  // u32 n, n x str folder_key
  EXPECT_EQ(Hex(Encode(FolderCheckResult{{"ab", "c"}})), "00000002" "000000026162" "0000000163");
}

TEST(MessagesRoundTripTest, FolderCheckRoundTripsAndIsBounded) {
  FolderCheck c;
  for (size_t i = 0; i < kMaxFoldersPerCheck; ++i) {
    c.folders.push_back({"key" + std::to_string(i), {"partition-default", "user/x"}, {"a", "b"}});
  }
  auto back = DecodeFolderCheck(Encode(c));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->folders.size(), c.folders.size());
  EXPECT_EQ(back->folders[7].folder_key, "key7");
  EXPECT_EQ(back->folders[7].data_dir, c.folders[7].data_dir);
  EXPECT_EQ(back->folders[7].archive_dir, c.folders[7].archive_dir);
  c.folders.push_back(c.folders[0]);
  EXPECT_EQ(DecodeFolderCheck(Encode(c)).status().code(), Code::kCorruption);
  const std::string r = Encode(FolderCheckResult{{"x", "y"}});
  auto rb = DecodeFolderCheckResult(r);
  ASSERT_TRUE(rb.ok());
  EXPECT_EQ(rb->needs_exchange, (std::vector<std::string>{"x", "y"}));
  EXPECT_FALSE(DecodeFolderCheckResult(r + "x").ok());
  EXPECT_FALSE(DecodeFolderCheckResult(r.substr(0, r.size() - 1)).ok());
}

TEST(MessagesGoldenTest, FolderFlushResult) {
  // u32 n, n x (str intname, str error)
  EXPECT_EQ(Hex(Encode(FolderFlushResult{{{"u.a", "E"}}})),
            "00000001" "00000003752e61" "0000000145");
  EXPECT_EQ(Hex(Encode(FolderFlushResult{})), "00000000");
}

TEST(MessagesRoundTripTest, FolderFlushResultRoundTripsAndRejectsBadPayloads) {
  const FolderFlushResult m{{{"user.alice", "disk full"}, {"user.bob.Sent", "rename failed"}}};
  const std::string p = Encode(m);
  auto back = DecodeFolderFlushResult(p);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->failed, m.failed);
  EXPECT_FALSE(DecodeFolderFlushResult(p + "x").ok());
  EXPECT_FALSE(DecodeFolderFlushResult(p.substr(0, p.size() - 1)).ok());
  // A count far beyond the payload fails on the first missing field, without reserving.
  EXPECT_EQ(DecodeFolderFlushResult(std::string("\xff\xff\xff\xff", 4)).status().code(),
            Code::kCorruption);
}

}  // namespace
}  // namespace cyrsync::protocol
