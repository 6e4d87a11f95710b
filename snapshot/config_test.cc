#include "snapshot/config.h"

#include <gtest/gtest.h>

namespace cyrsync::snapshot {
namespace {

constexpr const char* kConfig = R"({
  "archive_dir": "/srv/a",
  "tls": {"ca": "ca.crt", "cert": "c.crt", "key": "c.key"},
  "default_from": "replica", "on_replica_unavailable": "master",
  "max_replica_lag_seconds": 600, "workers": 3, "retention_days": 7,
  "stores": {"s1": {"slots": [
      {"role": "replica", "host": "10.0.0.2", "port": 7401, "drive": "r1"},
      {"role": "master", "host": "10.0.0.1", "port": 7401}]}},
  "users": {"alice": "s1"},
  "default_store": "s1"
})";

TEST(SnapshotConfigTest, ParsesStoresSlotsAndUsers) {
  auto c = ParseSnapshotConfig(kConfig);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->archive_dir, "/srv/a");
  EXPECT_EQ(c->max_replica_lag_seconds, 600);
  EXPECT_EQ(c->retention_seconds, 7 * 86400);
  const StoreSlots* s = c->StoreOf("alice");
  ASSERT_NE(s, nullptr);
  ASSERT_NE(s->Find("replica"), nullptr);
  EXPECT_EQ(s->Find("replica")->drive, "r1");
  EXPECT_EQ(s->Find("master")->drive, "10.0.0.1");  // drive defaults to the host
  EXPECT_EQ(c->StoreOf("unknown"), s);              // default_store
}

TEST(SnapshotConfigTest, RejectsBadRolesAndMissingKeys) {
  EXPECT_FALSE(ParseSnapshotConfig("[]").ok());
  EXPECT_FALSE(ParseSnapshotConfig(R"({"archive_dir": "/a"})").ok());
  std::string bad = kConfig;
  bad.replace(bad.find("\"master\", \"host\""), 8, "\"boss\"");
  auto c = ParseSnapshotConfig(bad);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("role"), std::string::npos) << c.error().message();
}

}  // namespace
}  // namespace cyrsync::snapshot
