// Manifest::Page walks the entries in path order a page at a time, with the owner filter, and
// tolerates entries removed between pages.
#include "replica/manifest.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/testutil/temp_dir.h"

namespace cyrsync::replica {
namespace {

StoredEntry Entry(const std::string& root, const std::string& rel, const std::string& owner) {
  StoredEntry e;
  e.entry.path = {root, rel};
  e.entry.owner = owner;
  e.entry.kind = protocol::EntryKind::kFile;
  return e;
}

std::vector<protocol::WirePath> AllPages(Manifest& m, const std::string& owner, size_t limit) {
  std::vector<protocol::WirePath> out;
  std::optional<protocol::WirePath> last;
  while (true) {
    auto page = m.Page(owner, last ? &*last : nullptr, limit);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok() || page->empty()) return out;
    EXPECT_LE(page->size(), limit);
    for (const auto& e : *page) out.push_back(e.entry.path);
    last = page->back().entry.path;
  }
}

TEST(ManifestPageTest, PagesGiveEveryEntryInPathOrder) {
  testing::TempDir dir;
  auto m = Manifest::Open(dir.Sub("manifest.sqlite"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::vector<StoredEntry> ups;
  for (int i = 0; i < 23; ++i) {
    ups.push_back(Entry(i % 3 ? "partition-default" : "configdirectory",
                        "user/u" + std::to_string(i % 5) + "/f" + std::to_string(i),
                        "u" + std::to_string(i % 2)));
  }
  ASSERT_TRUE((*m)->Apply(ups, {}, std::nullopt).ok());
  for (const std::string owner : {"", "u1"}) {
    std::vector<protocol::WirePath> want;
    for (const auto& e : ups) {
      if (owner.empty() || e.entry.owner == owner) want.push_back(e.entry.path);
    }
    std::sort(want.begin(), want.end());
    EXPECT_EQ(want.size(), owner.empty() ? 23u : 11u);
    for (size_t limit : {1, 4, 23, 100}) EXPECT_EQ(AllPages(**m, owner, limit), want) << limit;
  }
  // An entry removed between pages is simply not seen; the walk goes on after it.
  auto first = (*m)->Page("", nullptr, 5);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 5u);
  ASSERT_TRUE((*m)->Remove({first->back().entry.path}).ok());
  auto next = (*m)->Page("", &first->back().entry.path, 100);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->size(), 23u - 5u);
}

}  // namespace
}  // namespace cyrsync::replica
