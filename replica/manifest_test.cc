// Manifest::Page walks the entries in path order a page at a time, with the owner filter, and
// tolerates entries removed between pages.
#include "replica/manifest.h"

#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

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

// Runs SQL on the database at path with a plain connection; returns the first column of the
// first row of the last statement, if any.
std::string RawSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string first;
  auto cb = [](void* out, int n, char** vals, char**) {
    auto* s = static_cast<std::string*>(out);
    if (s->empty() && n > 0 && vals[0]) *s = vals[0];
    return 0;
  };
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), cb, &first, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
  return first;
}

std::string Fixture(int version) {
  const char* src = std::getenv("CYRSYNC_SOURCE_DIR");
  std::ifstream in(std::string(src ? src : ".") + "/tests/data/manifest-v" +
                   std::to_string(version) + "/manifest.sql");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A version 1 manifest (rows in an ordinary table) is upgraded in place to the current version
// (rows in path order WITHOUT ROWID, folders with a message digest) and keeps every entry,
// folder and meta value.
TEST(ManifestSchemaTest, VersionOneIsUpgradedKeepingEveryRecord) {
  testing::TempDir dir;
  const std::string path = dir.Sub("manifest.sqlite");
  const std::string fixture = Fixture(1);
  ASSERT_FALSE(fixture.empty()) << "tests/data/manifest-v1/manifest.sql not found";
  RawSql(path, fixture);
  std::ostringstream log_text;
  auto log = std::make_shared<spdlog::logger>(
      "t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  {
    auto m = Manifest::Open(path, log.get());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    auto idx = (*m)->Get({"partition-default", "uuid/3/3/33svgem7f6p9vzgufxjxmn1e/cyrus.index"});
    ASSERT_TRUE(idx.ok() && idx->has_value());
    EXPECT_EQ((*idx)->entry.source.mtime_ns, 1795000000123456789);
    EXPECT_EQ((*idx)->entry.index_minor, 17u);
    EXPECT_EQ((*idx)->local.ino, 9001u);
    auto hdr = (*m)->Get({"partition-default", "uuid/3/3/33svgem7f6p9vzgufxjxmn1e/cyrus.header"});
    ASSERT_TRUE(hdr.ok() && hdr->has_value());
    EXPECT_TRUE((*hdr)->entry.unsettled);
    auto entries = (*m)->FolderEntries("33svgem7f6p9vzgufxjxmn1e");
    ASSERT_TRUE(entries.ok());
    EXPECT_EQ(entries->size(), 2u);
    EXPECT_EQ(AllPages(**m, "", 2).size(), 3u);
    auto folder = (*m)->GetFolder("33svgem7f6p9vzgufxjxmn1e");
    ASSERT_TRUE(folder.ok() && folder->has_value());
    EXPECT_EQ((*folder)->intname, "user.alice");
    EXPECT_FALSE((*folder)->messages.known());
    auto synced = (*m)->GetMeta("synced:*");
    ASSERT_TRUE(synced.ok() && synced->has_value());
    EXPECT_EQ(**synced, "1795000000");
  }
  EXPECT_NE(log_text.str().find("manifest upgrade starting"), std::string::npos) << log_text.str();
  EXPECT_NE(log_text.str().find("manifest upgrade done"), std::string::npos) << log_text.str();
  EXPECT_EQ(RawSql(path, "SELECT value FROM meta WHERE key='schema_version'"), "3");
  const std::string table = RawSql(path, "SELECT sql FROM sqlite_master WHERE name='entries'");
  EXPECT_NE(table.find("WITHOUT ROWID"), std::string::npos) << table;
  EXPECT_EQ(RawSql(path, "SELECT count(*) FROM sqlite_master WHERE name='entries_v1'"), "0");
  EXPECT_EQ(RawSql(path, "SELECT count(*) FROM sqlite_master WHERE name='entries_folder'"), "1");
  // Opening again changes nothing, and says nothing.
  const size_t logged = log_text.str().size();
  auto again = Manifest::Open(path, log.get());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(AllPages(**again, "", 10).size(), 3u);
  EXPECT_EQ(log_text.str().size(), logged);
}

// A version 2 manifest gains the folders' message digests, unknown for every existing folder
// (its next --full check reads the installed index), and keeps every record.
TEST(ManifestSchemaTest, VersionTwoIsUpgradedWithUnknownDigests) {
  testing::TempDir dir;
  const std::string path = dir.Sub("manifest.sqlite");
  const std::string fixture = Fixture(2);
  ASSERT_FALSE(fixture.empty()) << "tests/data/manifest-v2/manifest.sql not found";
  RawSql(path, fixture);
  auto m = Manifest::Open(path);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(AllPages(**m, "", 2).size(), 3u);
  const protocol::WirePath dir_path{"partition-default", "uuid/3/3/33svgem7f6p9vzgufxjxmn1e"};
  auto folder = (*m)->FolderAtDir(dir_path);
  ASSERT_TRUE(folder.ok() && folder->has_value());
  EXPECT_EQ((*folder)->folder_key, "33svgem7f6p9vzgufxjxmn1e");
  EXPECT_FALSE((*folder)->messages.known());
  auto version = (*m)->GetMeta("schema_version");
  ASSERT_TRUE(version.ok() && version->has_value());
  EXPECT_EQ(**version, "3");
  // A folder recorded now keeps its digest, until its entries are forgotten.
  FolderRow row = **folder;
  row.messages = MessageDigest::Empty();
  row.messages.Add(1, false);
  row.messages.Add(7, true);
  ASSERT_TRUE((*m)->Apply({}, {}, row).ok());
  auto again = (*m)->GetFolder(row.folder_key);
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->messages, row.messages);
  ASSERT_TRUE((*m)->RemoveFolderEntries(row.folder_key).ok());
  again = (*m)->GetFolder(row.folder_key);
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_FALSE((*again)->messages.known());
}

// The digest is a set's: the order of adding does not matter, a lost, an extra or a moved
// (archived) file changes it.
TEST(MessageDigestTest, DependsOnTheSetOnly) {
  auto digest = [](std::vector<std::pair<uint32_t, bool>> locs) {
    MessageDigest d = MessageDigest::Empty();
    for (auto [uid, archived] : locs) d.Add(uid, archived);
    return d;
  };
  const MessageDigest base = digest({{1, false}, {2, false}, {3, true}});
  EXPECT_EQ(base, digest({{3, true}, {1, false}, {2, false}}));
  EXPECT_NE(base, digest({{1, false}, {2, false}}));
  EXPECT_NE(base, digest({{1, false}, {2, false}, {3, true}, {4, false}}));
  EXPECT_NE(base, digest({{1, false}, {2, false}, {3, false}}));
  EXPECT_NE(base, digest({{1, false}, {2, false}, {4, true}}));
  EXPECT_TRUE(MessageDigest::Empty().known());
  EXPECT_FALSE(MessageDigest{}.known());
}

TEST(ManifestSchemaTest, ANewerVersionIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.Sub("manifest.sqlite");
  RawSql(path, "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
               "INSERT INTO meta VALUES('schema_version', '4');");
  auto m = Manifest::Open(path);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(m.status().message().find("schema version 4"), std::string::npos);
}

}  // namespace
}  // namespace cyrsync::replica
