#include "snapshot/run_marker.h"

#include <gtest/gtest.h>

namespace cyrsync::snapshot {
namespace {

TEST(RunMarkerTest, NamesRoundTrip) {
  EXPECT_EQ(RunMarkerName(12), "runs/12.json");
  EXPECT_EQ(RunEndMarkerName(12), "runs/12.end.json");
  auto s = ParseMarkerName("runs/12.json");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->run_id, 12);
  EXPECT_FALSE(s->end);
  auto e = ParseMarkerName("runs/7.end.json");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->end);
  for (const char* bad : {"runs/.json", "runs/07.json", "runs/1.txt", "runs/x.json", "run/1.json",
                          "runs/1/2.json", "runs/-1.json"}) {
    EXPECT_FALSE(ParseMarkerName(bad)) << bad;
  }
}

TEST(RunMarkerTest, StartAndEndRoundTripWithEscapes) {
  RunInfo run{42, 1700000000, 1700000099, "replica \"10.0.0.2\":7401\\\n\x01", "us\xc3\xa9r"};
  auto start = DecodeRunMarker(EncodeRunMarker(run), false);
  ASSERT_TRUE(start.ok()) << start.status().ToString();
  EXPECT_EQ(start->run_id, 42);
  EXPECT_EQ(start->started, 1700000000);
  EXPECT_EQ(start->source, run.source);
  EXPECT_EQ(start->user, run.user);
  auto end = DecodeRunMarker(EncodeRunEndMarker(run), true);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->finished, 1700000099);
  EXPECT_EQ(EncodeRunEndMarker(run),
            "{ \"format\":\"cyrsync-archive\",\"version\":2,\"run_id\":42,"
            "\"finished\":1700000099}\n");
}

TEST(RunMarkerTest, DecoderAcceptsOtherJsonSpellings) {
  auto r = DecodeRunMarker(
      " {\"user\":\"\\u00e9\\ud83d\\ude00\", \"extra\": 5, \"format\":\"cyrsync-archive\",\n"
      "\"version\":1,\"run_id\":3,\"started\":-5,\"source\":\"s\"}",
      false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->user, "\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(r->started, -5);
}

TEST(RunMarkerTest, RejectsBadMarkers) {
  const char* bad[] = {
      "",
      "{",
      "[]",
      "{\"format\":\"tar\",\"version\":1,\"run_id\":1,\"finished\":2}",
      "{\"format\":\"cyrsync-archive\",\"version\":3,\"run_id\":1,\"finished\":2}",
      "{\"format\":\"cyrsync-archive\",\"version\":1,\"run_id\":\"1\",\"finished\":2}",
      "{\"format\":\"cyrsync-archive\",\"version\":1,\"run_id\":1}",
      "{\"format\":\"cyrsync-archive\",\"version\":1,\"run_id\":1,\"finished\":2} x",
      "{\"format\":\"cyrsync-archive\\ud800\",\"version\":1,\"run_id\":1,\"finished\":2}",
      "{\"format\":\"cyrsync-archive\",\"version\":1,\"run_id\":1,\"finished\":"
      "99999999999999999999}",
  };
  for (const char* b : bad) {
    auto r = DecodeRunMarker(b, true);
    ASSERT_FALSE(r.ok()) << b;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << b;
  }
}

}  // namespace
}  // namespace cyrsync::snapshot
