#include "syncer/replica_view.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace cyrsync::syncer {
namespace {

using protocol::EntryKind;
using protocol::ManifestEntry;

ManifestEntry Make(std::string root, std::string rel, uint64_t size, std::string owner = "",
                   EntryKind kind = EntryKind::kFile, std::string key = "") {
  ManifestEntry e;
  e.path = {std::move(root), std::move(rel)};
  e.owner = std::move(owner);
  e.folder_key = std::move(key);
  e.kind = kind;
  e.source = {size, 1, 2, 3};
  return e;
}

TEST(ReplicaView, FindsWhatWasAddedAndNothingElse) {
  ReplicaView v;
  v.Add(Make("default", "a/user/bob/cyrus.index", 10, "bob", EntryKind::kMeta, "K1"));
  v.Add(Make("meta", "a/user/bob/cyrus.index", 20));
  ASSERT_NE(v.Find({"default", "a/user/bob/cyrus.index"}), nullptr);
  EXPECT_EQ(v.Find({"default", "a/user/bob/cyrus.index"})->source.size, 10u);
  EXPECT_EQ(v.Find("meta", "a/user/bob/cyrus.index")->source.size, 20u);
  EXPECT_EQ(v.Find("default", "a/user/bob/cyrus.header"), nullptr);
  // root and rel are compared separately, not as one concatenated string
  EXPECT_EQ(v.Find("defaulta", "/user/bob/cyrus.index"), nullptr);
  EXPECT_EQ(v.size(), 2u);
  ASSERT_EQ(v.folder_owner().size(), 1u);
  EXPECT_EQ(v.folder_owner().at("K1"), "bob");
}

TEST(ReplicaView, ALaterEntryForThePathReplacesTheEarlierOne) {
  ReplicaView v;
  v.Add(Make("r", "p", 1, "old"));
  auto e = Make("r", "p", 2, "new-owner");
  e.unsettled = true;
  v.Add(e);
  EXPECT_EQ(v.size(), 1u);
  const auto* got = v.Find("r", "p");
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->source.size, 2u);
  EXPECT_TRUE(got->unsettled);
  v.ForEach([](std::string_view, std::string_view, const ReplicaView::Entry&,
               std::string_view owner) { EXPECT_EQ(owner, "new-owner"); });
}

TEST(ReplicaView, ManyEntriesAndLongPathsSurviveGrowth) {
  ReplicaView v;
  std::map<std::string, uint64_t> want;
  for (uint64_t i = 0; i < 50000; ++i) {
    std::string rel = "x/user/u" + std::to_string(i % 977) + "/f" + std::to_string(i);
    if (i % 5000 == 0) rel += std::string(40000, 'L');  // longer than an arena chunk's quarter
    want[rel] = i;
    v.Add(Make("default", rel, i, "u" + std::to_string(i % 977)));
  }
  ASSERT_EQ(v.size(), want.size());
  for (const auto& [rel, size] : want) {
    const auto* e = v.Find("default", rel);
    ASSERT_NE(e, nullptr) << rel.substr(0, 40);
    EXPECT_EQ(e->source.size, size);
  }
  size_t seen = 0;
  v.ForEach([&](std::string_view root, std::string_view rel, const ReplicaView::Entry& e,
                std::string_view owner) {
    EXPECT_EQ(root, "default");
    EXPECT_EQ(want.at(std::string(rel)), e.source.size);
    EXPECT_EQ(owner, "u" + std::to_string(e.source.size % 977));
    ++seen;
  });
  EXPECT_EQ(seen, want.size());
  ReplicaView moved = std::move(v);
  EXPECT_NE(moved.Find("default", "x/user/u1/f1"), nullptr);
}

TEST(ReplicaView, EmptyViewFindsNothing) {
  ReplicaView v;
  EXPECT_EQ(v.Find("", ""), nullptr);
  EXPECT_EQ(v.size(), 0u);
}

}  // namespace
}  // namespace cyrsync::syncer
