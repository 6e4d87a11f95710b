#include "snapshot/guid_set.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>

namespace cyrsync::snapshot {
namespace {

Guid Make(uint64_t head, uint64_t tail) {
  Guid g{};
  std::memcpy(g.data(), &head, sizeof head);
  std::memcpy(g.data() + 12, &tail, sizeof tail);
  return g;
}

TEST(GuidSetTest, InsertReportsNewOnlyOnceAndContainsAgrees) {
  GuidSet s;
  const Guid a = Make(1, 2);
  EXPECT_FALSE(s.contains(a));
  EXPECT_TRUE(s.insert(a));
  EXPECT_FALSE(s.insert(a));
  EXPECT_TRUE(s.contains(a));
  EXPECT_FALSE(s.contains(Make(1, 3)));  // same home slot, other GUID
  EXPECT_EQ(s.size(), 1u);
}

// The all-zero GUID marks an empty slot inside the table; as a member it is kept aside.
TEST(GuidSetTest, TheAllZeroGuidIsAMemberLikeAnyOther) {
  GuidSet s;
  EXPECT_FALSE(s.contains(Guid{}));
  EXPECT_TRUE(s.insert(Guid{}));
  EXPECT_FALSE(s.insert(Guid{}));
  EXPECT_TRUE(s.contains(Guid{}));
  EXPECT_EQ(s.size(), 1u);
}

// GUIDs that differ in a few bytes only (not SHA-1s) are still spread and found, across the
// table's growth; 3000 identical homes would show as a slow test, not a failure.
TEST(GuidSetTest, NearlyEqualGuidsSurviveGrowth) {
  GuidSet s;
  for (uint64_t t = 1; t <= 3000; ++t) ASSERT_TRUE(s.insert(Make(42, t)));
  for (uint64_t t = 1; t <= 3000; ++t) ASSERT_TRUE(s.contains(Make(42, t))) << t;
  EXPECT_FALSE(s.contains(Make(42, 3001)));
  EXPECT_EQ(s.size(), 3000u);
}

TEST(GuidSetTest, AgreesWithAnOrderedSetOnRandomGuids) {
  std::mt19937_64 rng(7);
  GuidSet s;
  std::set<Guid> ref;
  for (int i = 0; i < 200000; ++i) {
    // A small range of heads and tails: many GUIDs differ in a few bits only.
    const Guid g = Make(rng() % 50000, rng() % 4);
    EXPECT_EQ(s.insert(g), ref.insert(g).second);
  }
  EXPECT_EQ(s.size(), ref.size());
  for (int i = 0; i < 50000; ++i) {
    const Guid g = Make(rng() % 60000, rng() % 5);
    ASSERT_EQ(s.contains(g), ref.count(g) == 1);
  }
}

}  // namespace
}  // namespace cyrsync::snapshot
