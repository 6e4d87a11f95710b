#include "replica/manifest.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>

namespace cyrsync::replica {
namespace {

// Version 2 stores entries WITHOUT ROWID, in (root, rel) order: the per-pass walk of every
// entry in path order reads one b-tree instead of an index plus a row lookup per entry.
constexpr const char* kEntriesTable = R"sql(
CREATE TABLE IF NOT EXISTS entries(
  root TEXT NOT NULL, rel TEXT NOT NULL, owner TEXT NOT NULL, folder_key TEXT NOT NULL,
  kind INTEGER NOT NULL,
  src_size INTEGER NOT NULL, src_mtime INTEGER NOT NULL, src_ctime INTEGER NOT NULL,
  src_ino INTEGER NOT NULL, unsettled INTEGER NOT NULL, index_minor INTEGER NOT NULL,
  loc_size INTEGER NOT NULL, loc_mtime INTEGER NOT NULL, loc_ctime INTEGER NOT NULL,
  loc_ino INTEGER NOT NULL,
  PRIMARY KEY(root, rel)) WITHOUT ROWID;
)sql";

constexpr const char* kOtherTables = R"sql(
CREATE INDEX IF NOT EXISTS entries_folder ON entries(folder_key);
CREATE TABLE IF NOT EXISTS folders(
  folder_key TEXT PRIMARY KEY, owner TEXT NOT NULL, intname TEXT NOT NULL,
  data_root TEXT NOT NULL, data_rel TEXT NOT NULL,
  archive_root TEXT NOT NULL, archive_rel TEXT NOT NULL,
  msg_count INTEGER NOT NULL DEFAULT -1, msg_sum INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS folders_dir ON folders(data_root, data_rel);
)sql";

constexpr const char* kSchemaVersion = "3";

// A prepared statement that finalizes itself.
// A statement from the connection's cache (prepared on first use), reset for reuse when done.
class Stmt {
 public:
  Stmt(sqlite3* db, std::unordered_map<std::string, sqlite3_stmt*>& cache, const std::string& sql) {
    auto it = cache.find(sql);
    if (it != cache.end()) {
      s_ = it->second;
      rc_ = SQLITE_OK;
      return;
    }
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr);
    if (rc_ == SQLITE_OK) cache.emplace(sql, s_);
  }
  ~Stmt() {
    if (s_ == nullptr) return;
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return s_; }
  void Text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Int(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  std::string ColText(int i) {
    auto* p = sqlite3_column_text(s_, i);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, i)) : "";
  }
  int64_t ColInt(int i) { return sqlite3_column_int64(s_, i); }
  std::string_view ColView(int i) {
    auto* p = sqlite3_column_text(s_, i);
    return p ? std::string_view(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, i))
             : std::string_view();
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

Status DbError(sqlite3* db, const char* what) {
  return IOError(std::string("manifest ") + what + ": " + sqlite3_errmsg(db));
}

constexpr const char* kSelectCols =
    "SELECT root, rel, owner, folder_key, kind, src_size, src_mtime, src_ctime, src_ino, "
    "unsettled, index_minor, loc_size, loc_mtime, loc_ctime, loc_ino FROM entries ";

StoredEntryView ViewRow(Stmt& s) {
  StoredEntryView e;
  e.entry.root = s.ColView(0);
  e.entry.rel = s.ColView(1);
  e.entry.owner = s.ColView(2);
  e.entry.folder_key = s.ColView(3);
  e.entry.kind = static_cast<protocol::EntryKind>(s.ColInt(4));
  e.entry.source = {static_cast<uint64_t>(s.ColInt(5)), s.ColInt(6), s.ColInt(7),
                    static_cast<uint64_t>(s.ColInt(8))};
  e.entry.unsettled = s.ColInt(9) != 0;
  e.entry.index_minor = static_cast<uint32_t>(s.ColInt(10));
  e.local = {static_cast<uint64_t>(s.ColInt(11)), s.ColInt(12), s.ColInt(13),
             static_cast<uint64_t>(s.ColInt(14))};
  return e;
}

StoredEntry ReadRow(Stmt& s) { return ViewRow(s).Copy(); }

}  // namespace

StoredEntry StoredEntryView::Copy() const {
  return {{{std::string(entry.root), std::string(entry.rel)},
           std::string(entry.owner),
           std::string(entry.folder_key),
           entry.kind,
           entry.source,
           entry.unsettled,
           entry.index_minor},
          local};
}

Manifest::~Manifest() {
  for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Result<std::unique_ptr<Manifest>> Manifest::Open(const std::string& path,
                                                  spdlog::logger* log) {
  sqlite3* db = nullptr;
  // NOMUTEX: every use of the connection is already serialized by mu_, and SQLite's own
  // per-call mutex was a tenth of the daemon's CPU in an unchanged pass.
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    Status s = IOError("open manifest " + path + ": " + sqlite3_errmsg(db));
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<Manifest> m(new Manifest(db, path));
  // NORMAL: a commit lost in a crash leaves the manifest older than the disk, which is safe (an
  // entry whose copy changed is dropped and copied again); it saves an fsync per folder.
  // EXCLUSIVE: this process is the manifest's only user (one connection behind mu_; Store's
  // flock of the state directory keeps other processes out), so there are no lock round trips
  // per transaction and no shared-memory index.
  RETURN_IF_ERROR(m->Exec("PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; "
                          "PRAGMA synchronous=NORMAL;"));
  RETURN_IF_ERROR(m->CreateOrUpgrade(log));
  return m;
}

// A new database gets version 3. Older ones are upgraded in one transaction (a crash leaves
// the old version whole): version 1 has its entries moved into the version 2 table; versions 1
// and 2 get the folders' message digest columns, unknown for every existing row. A newer
// version is refused.
Status Manifest::CreateOrUpgrade(spdlog::logger* log) {
  RETURN_IF_ERROR(Exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)"));
  ASSIGN_OR_RETURN(auto stored, GetMeta("schema_version"));
  const std::string version = stored.value_or("");  // empty: a new database
  if (version == kSchemaVersion) return Status::Ok();
  if (!version.empty() && version != "1" && version != "2") {
    return FailedPreconditionError("manifest " + path_ + " has schema version " + version +
                                   ", newer than this cyrsync (" + kSchemaVersion + ")");
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (!version.empty() && log) {
    log->info("manifest upgrade starting path={} from={} to={}", path_, version, kSchemaVersion);
  }
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Status st = UpgradeLocked(version);
  if (st.ok()) {
    st = Exec((std::string("INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '") +
               kSchemaVersion + "')").c_str());
  }
  if (!st.ok()) {
    (void)Exec("ROLLBACK");
    return st;
  }
  RETURN_IF_ERROR(Exec("COMMIT"));
  if (version.empty()) return Status::Ok();
  // The version 1 table's pages are free now; rewriting the file puts the entries' pages in
  // order, which is what the per-pass walk reads.
  if (version == "1") RETURN_IF_ERROR(Exec("VACUUM"));
  if (log) {
    log->info("manifest upgrade done path={} seconds={:.1f}", path_,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return Status::Ok();
}

// The tables of the current version from `version`'s ("" = none). REQUIRES: in a transaction.
Status Manifest::UpgradeLocked(const std::string& version) {
  if (version == "1") {
    RETURN_IF_ERROR(
        Exec("ALTER TABLE entries RENAME TO entries_v1; DROP INDEX IF EXISTS entries_folder;"));
  }
  RETURN_IF_ERROR(Exec(kEntriesTable));
  if (version == "1") {
    RETURN_IF_ERROR(Exec("INSERT INTO entries SELECT * FROM entries_v1; DROP TABLE entries_v1;"));
  }
  if (version == "1" || version == "2") {
    RETURN_IF_ERROR(Exec("ALTER TABLE folders ADD COLUMN msg_count INTEGER NOT NULL DEFAULT -1; "
                         "ALTER TABLE folders ADD COLUMN msg_sum INTEGER NOT NULL DEFAULT 0;"));
  }
  return Exec(kOtherTables);
}

void Manifest::WillNeed() const {
  for (const std::string& p : {path_, path_ + "-wal"}) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
    ::close(fd);
  }
}

void Manifest::Checkpoint() {
  std::lock_guard g(mu_);
  sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
}

Status Manifest::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Status s = IOError(std::string("manifest: ") + (err ? err : "?"));
    sqlite3_free(err);
    return s;
  }
  return Status::Ok();
}

Status Manifest::UpsertLocked(const StoredEntry& se) {
  Stmt s(db_, stmts_,
         "INSERT OR REPLACE INTO entries VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)");
  if (!s.ok()) return DbError(db_, "prepare upsert");
  const auto& e = se.entry;
  s.Text(1, e.path.root);
  s.Text(2, e.path.rel);
  s.Text(3, e.owner);
  s.Text(4, e.folder_key);
  s.Int(5, static_cast<int64_t>(e.kind));
  s.Int(6, static_cast<int64_t>(e.source.size));
  s.Int(7, e.source.mtime_ns);
  s.Int(8, e.source.ctime_ns);
  s.Int(9, static_cast<int64_t>(e.source.ino));
  s.Int(10, e.unsettled);
  s.Int(11, e.index_minor);
  s.Int(12, static_cast<int64_t>(se.local.size));
  s.Int(13, se.local.mtime_ns);
  s.Int(14, se.local.ctime_ns);
  s.Int(15, static_cast<int64_t>(se.local.ino));
  if (sqlite3_step(s.get()) != SQLITE_DONE) return DbError(db_, "upsert");
  return Status::Ok();
}

Status Manifest::RemoveLocked(const protocol::WirePath& p) {
  Stmt s(db_, stmts_, "DELETE FROM entries WHERE root=?1 AND rel=?2");
  s.Text(1, p.root);
  s.Text(2, p.rel);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return DbError(db_, "delete");
  return Status::Ok();
}

Status Manifest::Apply(const std::vector<StoredEntry>& upserts,
                       const std::vector<protocol::WirePath>& removed,
                       const std::optional<FolderRow>& folder) {
  std::lock_guard g(mu_);
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Status st;
  for (const auto& p : removed) {
    if (st.ok()) st = RemoveLocked(p);
  }
  for (const auto& e : upserts) {
    if (st.ok()) st = UpsertLocked(e);
  }
  if (st.ok() && folder) {
    Stmt s(db_, stmts_, "INSERT OR REPLACE INTO folders VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)");
    s.Text(1, folder->folder_key);
    s.Text(2, folder->owner);
    s.Text(3, folder->intname);
    s.Text(4, folder->data_dir.root);
    s.Text(5, folder->data_dir.rel);
    s.Text(6, folder->archive_dir.root);
    s.Text(7, folder->archive_dir.rel);
    s.Int(8, folder->messages.count);
    s.Int(9, static_cast<int64_t>(folder->messages.sum));
    if (sqlite3_step(s.get()) != SQLITE_DONE) st = DbError(db_, "folder upsert");
  }
  if (!st.ok()) {
    (void)Exec("ROLLBACK");
    return st;
  }
  return Exec("COMMIT");
}

Status Manifest::RemoveFolder(const std::string& folder_key) {
  std::lock_guard g(mu_);
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Stmt a(db_, stmts_, "DELETE FROM entries WHERE folder_key=?1");
  a.Text(1, folder_key);
  Stmt b(db_, stmts_, "DELETE FROM folders WHERE folder_key=?1");
  b.Text(1, folder_key);
  if (sqlite3_step(a.get()) != SQLITE_DONE || sqlite3_step(b.get()) != SQLITE_DONE) {
    Status st = DbError(db_, "remove folder");
    (void)Exec("ROLLBACK");
    return st;
  }
  return Exec("COMMIT");
}

Status Manifest::RemoveFolderEntries(const std::string& folder_key) {
  std::lock_guard g(mu_);
  {
    Stmt d(db_, stmts_, "UPDATE folders SET msg_count=-1, msg_sum=0 WHERE folder_key=?1");
    d.Text(1, folder_key);
    if (sqlite3_step(d.get()) != SQLITE_DONE) return DbError(db_, "forget folder digest");
  }
  Stmt s(db_, stmts_, "DELETE FROM entries WHERE folder_key=?1");
  s.Text(1, folder_key);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return DbError(db_, "remove folder entries");
  return Status::Ok();
}

Status Manifest::SetMessagesIfUnknown(const std::string& folder_key, const MessageDigest& d) {
  std::lock_guard g(mu_);
  Stmt s(db_, stmts_,
         "UPDATE folders SET msg_count=?2, msg_sum=?3 WHERE folder_key=?1 AND msg_count<0");
  s.Text(1, folder_key);
  s.Int(2, d.count);
  s.Int(3, static_cast<int64_t>(d.sum));
  if (sqlite3_step(s.get()) != SQLITE_DONE) return DbError(db_, "set folder digest");
  return Status::Ok();
}

Status Manifest::SetMeta(const std::string& key, const std::string& value) {
  std::lock_guard g(mu_);
  Stmt s(db_, stmts_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
  s.Text(1, key);
  s.Text(2, value);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return DbError(db_, "set meta");
  return Status::Ok();
}

Result<std::optional<std::string>> Manifest::GetMeta(const std::string& key) {
  std::lock_guard g(mu_);
  Stmt s(db_, stmts_, "SELECT value FROM meta WHERE key=?1");
  s.Text(1, key);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_ROW) return std::optional<std::string>(s.ColText(0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return DbError(db_, "get meta");
}

Status Manifest::Remove(const std::vector<protocol::WirePath>& paths) {
  return Apply({}, paths, std::nullopt);
}

Result<std::optional<StoredEntry>> Manifest::Get(const protocol::WirePath& path) {
  std::lock_guard g(mu_);
  Stmt s(db_, stmts_, std::string(kSelectCols) + "WHERE root=?1 AND rel=?2");
  s.Text(1, path.root);
  s.Text(2, path.rel);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_ROW) return std::optional<StoredEntry>(ReadRow(s));
  if (rc == SQLITE_DONE) return std::optional<StoredEntry>();
  return DbError(db_, "get");
}

Result<std::optional<FolderRow>> Manifest::GetFolder(const std::string& folder_key) {
  std::lock_guard g(mu_);
  Stmt s(db_, stmts_, "SELECT folder_key, owner, intname, data_root, data_rel, archive_root, archive_rel, "
              "msg_count, msg_sum FROM folders WHERE folder_key=?1");
  s.Text(1, folder_key);
  return ReadFolder(&s);
}

Result<std::optional<FolderRow>> Manifest::FolderAtDir(const protocol::WirePath& dir) {
  std::lock_guard g(mu_);
  Stmt s(db_, stmts_, "SELECT folder_key, owner, intname, data_root, data_rel, archive_root, archive_rel, "
              "msg_count, msg_sum FROM folders WHERE data_root=?1 AND data_rel=?2");
  s.Text(1, dir.root);
  s.Text(2, dir.rel);
  return ReadFolder(&s);
}

Result<std::optional<FolderRow>> Manifest::ReadFolder(void* stmt) {
  Stmt& s = *static_cast<Stmt*>(stmt);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::optional<FolderRow>();
  if (rc != SQLITE_ROW) return DbError(db_, "get folder");
  FolderRow f{s.ColText(0), s.ColText(1), s.ColText(2), {s.ColText(3), s.ColText(4)},
              {s.ColText(5), s.ColText(6)},
              {s.ColInt(7), static_cast<uint64_t>(s.ColInt(8))}};
  return std::optional<FolderRow>(std::move(f));
}

Result<std::vector<StoredEntry>> Manifest::FolderEntries(const std::string& folder_key) {
  std::lock_guard g(mu_);
  Stmt s(db_, stmts_, std::string(kSelectCols) + "WHERE folder_key=?1");
  s.Text(1, folder_key);
  std::vector<StoredEntry> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(ReadRow(s));
  if (rc != SQLITE_DONE) return DbError(db_, "folder entries");
  return out;
}

Result<std::vector<StoredEntry>> Manifest::Page(const std::string& owner,
                                                const protocol::WirePath* after, size_t limit) {
  std::vector<StoredEntry> out;
  RETURN_IF_ERROR(VisitPage(owner, after, limit, [&out](const StoredEntryView& e) {
                    out.push_back(e.Copy());
                  }).status());
  return out;
}

Result<size_t> Manifest::VisitPage(const std::string& owner, const protocol::WirePath* after,
                                   size_t limit,
                                   const std::function<void(const StoredEntryView&)>& fn) {
  std::lock_guard g(mu_);
  std::string where = owner.empty() ? "WHERE ?1 = '' " : "WHERE owner=?1 ";
  Stmt s(db_, stmts_,
         std::string(kSelectCols) + where + "AND (root, rel) > (?2, ?3) ORDER BY root, rel LIMIT ?4");
  s.Text(1, owner);
  s.Text(2, after ? after->root : std::string());
  s.Text(3, after ? after->rel : std::string());
  s.Int(4, static_cast<int64_t>(limit));
  size_t n = 0;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    fn(ViewRow(s));
    ++n;
  }
  if (rc != SQLITE_DONE) return DbError(db_, "page");
  return n;
}

}  // namespace cyrsync::replica
