// IndexDb on SQLite (schema: doc/formats/index_schema.md). Rollback-journal mode, not WAL: the
// index file is replaced by rename (Reindex, Compact), and a WAL would be a second file that
// has to travel with it.
#include <sqlite3.h>

#include <charconv>
#include <mutex>
#include <set>

#include "snapshot/archive.h"

namespace cyrsync::snapshot {
namespace {

constexpr int kBusyTimeoutMs = 10000;

// SQLITE_BUSY once the busy timeout has passed: another connection holds the index. A run that
// outgrew SQLite's page cache keeps its exclusive lock until it commits.
Status IndexError(sqlite3* db, const std::string& msg) {
  if ((sqlite3_extended_errcode(db) & 0xff) == SQLITE_BUSY) {
    return UnavailableError(msg + " (held by another cyrsync for " +
                            std::to_string(kBusyTimeoutMs / 1000) +
                            " s: a snapshot or compaction of this user is still running; retry "
                            "when it has finished)");
  }
  return IOError(msg);
}


constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES
  ('schema_version', '1'), ('committed_end', '0'), ('tail_state', '0'),
  ('last_compaction', '0');
CREATE TABLE IF NOT EXISTS runs(
  run_id INTEGER PRIMARY KEY, started INTEGER NOT NULL, finished INTEGER NOT NULL,
  source TEXT NOT NULL, user TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries(
  name TEXT NOT NULL, kind INTEGER NOT NULL, link_target TEXT NOT NULL, sha1 TEXT NOT NULL,
  mtime INTEGER NOT NULL, mode INTEGER NOT NULL, run_id INTEGER NOT NULL,
  member_offset INTEGER NOT NULL, member_length INTEGER NOT NULL,
  data_offset INTEGER NOT NULL, size INTEGER NOT NULL,
  UNIQUE(member_offset, data_offset));
CREATE INDEX IF NOT EXISTS entries_name ON entries(name, run_id);
DROP INDEX IF EXISTS entries_sha1;
)sql";

constexpr const char* kEntryCols =
    "SELECT name, kind, link_target, sha1, mtime, mode, run_id, member_offset, member_length, "
    "data_offset, size FROM entries ";
// Newest first: a later run wins, and within a run the later copy in the archive.
constexpr const char* kNewestFirst = "run_id DESC, member_offset DESC, data_offset DESC";

class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  int Step() { return sqlite3_step(s_); }
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  void Text(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Int(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  std::string ColText(int i) {
    auto* p = sqlite3_column_text(s_, i);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(s_, i)))
             : "";
  }
  int64_t ColInt(int i) { return sqlite3_column_int64(s_, i); }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

Entry ReadEntryRow(Stmt& s) {
  Entry e;
  e.name = s.ColText(0);
  e.kind = s.ColInt(1) == 1 ? EntryKind::kSymlink : EntryKind::kFile;
  e.link_target = s.ColText(2);
  e.sha1 = s.ColText(3);
  e.mtime = s.ColInt(4);
  e.mode = static_cast<uint32_t>(s.ColInt(5));
  e.run_id = s.ColInt(6);
  e.loc.member_offset = static_cast<uint64_t>(s.ColInt(7));
  e.loc.member_length = static_cast<uint64_t>(s.ColInt(8));
  e.loc.data_offset = static_cast<uint64_t>(s.ColInt(9));
  e.loc.size = static_cast<uint64_t>(s.ColInt(10));
  return e;
}

// The smallest string greater than every string starting with prefix ("" = no bound).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

class SqliteIndexDb final : public IndexDb {
 public:
  SqliteIndexDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteIndexDb() override {
    AbortRunRecord();
    has_file_.reset();  // statements are finalized before the connection closes
    sqlite3_close(db_);
  }

  Status Init();
  Result<std::vector<RunInfo>> Runs() override;
  Result<bool> HasFile(std::string_view sha1) override;
  Result<std::optional<Entry>> Latest(std::string_view name, int64_t as_of) override;
  Result<std::vector<Entry>> LatestUnder(std::string_view prefix, int64_t as_of) override;
  Result<std::vector<Entry>> AllEntries() override;
  Result<uint64_t> CommittedEnd() override;
  Result<int64_t> LastCompaction() override;
  Status CommitRun(const RunInfo& run, const std::vector<Entry>& entries,
                   uint64_t committed_end) override;
  Status BeginRunRecord(const RunInfo& run) override;
  Status AddRunEntries(const std::vector<Entry>& entries) override;
  Status FinishRunRecord(const RunInfo& run, uint64_t committed_end) override;
  void AbortRunRecord() override;
  Status SetLastCompaction(int64_t when) override;
  Result<TailState> GetTailState() override;
  Status SetTailState(TailState state) override;

 private:
  // The open run record: what Finish checks, and the prepared insert.
  struct Record {
    int64_t run_id = 0;
    uint64_t old_end = 0;       // CommittedEnd when the record began
    uint64_t entries_end = 0;   // the furthest member end of an entry added
    std::string bad;            // the first entry of another run, reported by Finish
    std::unique_ptr<Stmt> insert;
  };

  Status Error(const std::string& what) const {
    return IndexError(db_, "index " + path_ + ": " + what + ": " + sqlite3_errmsg(db_));
  }
  Status Exec(const char* sql);
  Result<bool> SchemaCurrent();
  Result<int64_t> MetaInt(const std::string& key);
  Status SetMetaInt(const std::string& key, int64_t v);
  Status InsertEntries(const std::vector<Entry>& entries);
  Status FinishLocked(const RunInfo& run, uint64_t committed_end);
  Result<std::vector<Entry>> Query(Stmt& s, const char* what);

  std::unique_lock<std::recursive_mutex> Lock() { return std::unique_lock(mu_); }

  std::recursive_mutex mu_;  // one call at a time; public calls may nest
  sqlite3* db_;
  std::string path_;
  std::unique_ptr<Stmt> has_file_;  // prepared once: asked for every message of a snapshot
  std::optional<Record> record_;
};

Status SqliteIndexDb::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Status s = IndexError(db_, "index " + path_ + ": " + (err ? err : "?"));
    sqlite3_free(err);
    return s;
  }
  return Status::Ok();
}

Status SqliteIndexDb::Init() {
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  // A run records up to a million entries in one transaction; entries_name is keyed by random
  // SHA-1 names: a 64 MiB page cache keeps that from re-reading index pages.
  RETURN_IF_ERROR(Exec("PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL; "
                       "PRAGMA cache_size=-65536;"));
  ASSIGN_OR_RETURN(bool current, SchemaCurrent());
  if (!current) RETURN_IF_ERROR(Exec(kSchema));
  ASSIGN_OR_RETURN(int64_t version, MetaInt("schema_version"));
  if (version != kSchemaVersion) {
    return FailedPreconditionError("index " + path_ + ": schema version " +
                                   std::to_string(version) + ", this build reads " +
                                   std::to_string(kSchemaVersion));
  }
  return Status::Ok();
}

// Whether the schema is in place as this build writes it. Opening a current index writes
// nothing, so a reader does not wait for a snapshot's open run record.
Result<bool> SqliteIndexDb::SchemaCurrent() {
  Stmt s(db_, "SELECT name FROM sqlite_master WHERE name IN "
              "('meta', 'runs', 'entries', 'entries_name', 'entries_sha1')");
  if (!s.ok()) return Error("read schema");
  std::set<std::string> names;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) names.insert(s.ColText(0));
  if (rc != SQLITE_DONE) return Error("read schema");
  return names == std::set<std::string>{"entries", "entries_name", "meta", "runs"};
}

Result<int64_t> SqliteIndexDb::MetaInt(const std::string& key) {
  Stmt s(db_, "SELECT value FROM meta WHERE key=?1");
  if (!s.ok()) return Error("prepare meta");
  s.Text(1, key);
  int rc = s.Step();
  if (rc == SQLITE_DONE) return CorruptionError("index " + path_ + ": meta " + key + " missing");
  if (rc != SQLITE_ROW) return Error("read meta " + key);
  std::string v = s.ColText(0);
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size()) {
    return CorruptionError("index " + path_ + ": meta " + key + " is not an integer");
  }
  return out;
}

Status SqliteIndexDb::SetMetaInt(const std::string& key, int64_t v) {
  Stmt s(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
  if (!s.ok()) return Error("prepare meta update");
  s.Text(1, key);
  s.Text(2, std::to_string(v));
  if (s.Step() != SQLITE_DONE) return Error("update meta " + key);
  return Status::Ok();
}

Result<std::vector<RunInfo>> SqliteIndexDb::Runs() {
  auto lock = Lock();
  Stmt s(db_, "SELECT run_id, started, finished, source, user FROM runs ORDER BY run_id");
  if (!s.ok()) return Error("prepare runs");
  std::vector<RunInfo> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back({s.ColInt(0), s.ColInt(1), s.ColInt(2), s.ColText(3), s.ColText(4)});
  }
  if (rc != SQLITE_DONE) return Error("read runs");
  return out;
}

Result<bool> SqliteIndexDb::HasFile(std::string_view sha1) {
  auto lock = Lock();
  if (!has_file_) {
    has_file_ = std::make_unique<Stmt>(db_, "SELECT 1 FROM entries WHERE name=?1 LIMIT 1");
  }
  Stmt& s = *has_file_;
  if (!s.ok()) return Error("prepare has_file");
  s.Text(1, "files/" + std::string(sha1));
  int rc = s.Step();
  s.Reset();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error("has_file");
  return rc == SQLITE_ROW;
}

Result<std::vector<Entry>> SqliteIndexDb::Query(Stmt& s, const char* what) {
  if (!s.ok()) return Error(std::string("prepare ") + what);
  std::vector<Entry> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadEntryRow(s));
  if (rc != SQLITE_DONE) return Error(what);
  return out;
}

Result<std::optional<Entry>> SqliteIndexDb::Latest(std::string_view name, int64_t as_of) {
  auto lock = Lock();
  Stmt s(db_, std::string(kEntryCols) + "WHERE name=?1 AND (?2=0 OR run_id<=?2) ORDER BY " +
                  kNewestFirst + " LIMIT 1");
  s.Text(1, name);
  s.Int(2, as_of);
  ASSIGN_OR_RETURN(std::vector<Entry> rows, Query(s, "latest"));
  if (rows.empty()) return std::optional<Entry>();
  return std::optional<Entry>(std::move(rows.front()));
}

Result<std::vector<Entry>> SqliteIndexDb::LatestUnder(std::string_view prefix, int64_t as_of) {
  auto lock = Lock();
  std::string end = PrefixEnd(std::string(prefix));
  Stmt s(db_, std::string(kEntryCols) +
                  "WHERE name>=?1 AND (?2='' OR name<?2) AND (?3=0 OR run_id<=?3) ORDER BY name, " +
                  kNewestFirst);
  s.Text(1, prefix);
  s.Text(2, end);
  s.Int(3, as_of);
  ASSIGN_OR_RETURN(std::vector<Entry> rows, Query(s, "latest_under"));
  std::vector<Entry> out;
  for (Entry& e : rows) {
    if (out.empty() || out.back().name != e.name) out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<Entry>> SqliteIndexDb::AllEntries() {
  auto lock = Lock();
  Stmt s(db_, std::string(kEntryCols) + "ORDER BY member_offset, data_offset");
  return Query(s, "all_entries");
}

Result<uint64_t> SqliteIndexDb::CommittedEnd() {
  auto lock = Lock();
  ASSIGN_OR_RETURN(int64_t v, MetaInt("committed_end"));
  if (v < 0) return CorruptionError("index " + path_ + ": negative committed_end");
  return static_cast<uint64_t>(v);
}

Result<TailState> SqliteIndexDb::GetTailState() {
  auto lock = Lock();
  ASSIGN_OR_RETURN(int64_t v, MetaInt("tail_state"));
  if (v < 0 || v > static_cast<int64_t>(TailState::kSwapping)) {
    return CorruptionError("index " + path_ + ": unknown tail_state " + std::to_string(v));
  }
  return static_cast<TailState>(v);
}

Result<int64_t> SqliteIndexDb::LastCompaction() {
  auto lock = Lock();
  return MetaInt("last_compaction");
}

Status SqliteIndexDb::SetLastCompaction(int64_t when) {
  auto lock = Lock();
  return SetMetaInt("last_compaction", when);
}

Status SqliteIndexDb::SetTailState(TailState state) {
  auto lock = Lock();
  return SetMetaInt("tail_state", static_cast<int64_t>(state));
}

Status CheckRunEntries(const RunInfo& run, const std::vector<Entry>& entries,
                       uint64_t committed_end) {
  for (const Entry& e : entries) {
    if (e.run_id != run.run_id) {
      return InvalidArgumentError("CommitRun: entry " + e.name + " belongs to run " +
                                  std::to_string(e.run_id) + ", not " + std::to_string(run.run_id));
    }
    if (e.loc.member_offset + e.loc.member_length > committed_end) {
      return InvalidArgumentError("CommitRun: entry " + e.name + " lies past committed end " +
                                  std::to_string(committed_end));
    }
  }
  return Status::Ok();
}

Status SqliteIndexDb::BeginRunRecord(const RunInfo& run) {
  auto lock = Lock();
  if (record_) return FailedPreconditionError("index " + path_ + ": a run record is open");
  ASSIGN_OR_RETURN(uint64_t old_end, CommittedEnd());
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto insert =
      std::make_unique<Stmt>(db_, "INSERT INTO entries VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)");
  if (!insert->ok()) {
    Status st = Error("prepare entry insert");
    (void)Exec("ROLLBACK");
    return st;
  }
  record_ = Record{run.run_id, old_end, 0, "", std::move(insert)};
  return Status::Ok();
}

Status SqliteIndexDb::InsertEntries(const std::vector<Entry>& entries) {
  Stmt& s = *record_->insert;
  for (const Entry& e : entries) {
    if (e.run_id != record_->run_id && record_->bad.empty()) {
      record_->bad = e.name + " belongs to run " + std::to_string(e.run_id);
    }
    record_->entries_end =
        std::max(record_->entries_end, e.loc.member_offset + e.loc.member_length);
    s.Text(1, e.name);
    s.Int(2, static_cast<int64_t>(e.kind));
    s.Text(3, e.link_target);
    s.Text(4, e.sha1);
    s.Int(5, e.mtime);
    s.Int(6, e.mode);
    s.Int(7, e.run_id);
    s.Int(8, static_cast<int64_t>(e.loc.member_offset));
    s.Int(9, static_cast<int64_t>(e.loc.member_length));
    s.Int(10, static_cast<int64_t>(e.loc.data_offset));
    s.Int(11, static_cast<int64_t>(e.loc.size));
    int rc = s.Step();
    s.Reset();
    if (rc != SQLITE_DONE) return Error("insert entry " + e.name);
  }
  return Status::Ok();
}

Status SqliteIndexDb::AddRunEntries(const std::vector<Entry>& entries) {
  auto lock = Lock();
  if (!record_) return FailedPreconditionError("index " + path_ + ": no run record is open");
  return InsertEntries(entries);
}

Status SqliteIndexDb::FinishLocked(const RunInfo& run, uint64_t committed_end) {
  const Record& r = *record_;
  const std::string what = "run " + std::to_string(run.run_id) + ": ";
  if (run.run_id != r.run_id) {
    return InvalidArgumentError(what + "the open record is run " + std::to_string(r.run_id));
  }
  if (!r.bad.empty()) return InvalidArgumentError(what + "entry " + r.bad);
  if (r.entries_end > committed_end) {
    return InvalidArgumentError(what + "an entry lies past committed end " +
                                std::to_string(committed_end));
  }
  if (committed_end < r.old_end) {
    return InvalidArgumentError(what + "committed end " + std::to_string(committed_end) +
                                " before the current " + std::to_string(r.old_end));
  }
  Stmt ins(db_, "INSERT INTO runs(run_id, started, finished, source, user) VALUES(?1,?2,?3,?4,?5)");
  if (!ins.ok()) return Error("prepare run insert");
  ins.Int(1, run.run_id);
  ins.Int(2, run.started);
  ins.Int(3, run.finished);
  ins.Text(4, run.source);
  ins.Text(5, run.user);
  if (ins.Step() != SQLITE_DONE) return Error("insert run " + std::to_string(run.run_id));
  RETURN_IF_ERROR(SetMetaInt("committed_end", static_cast<int64_t>(committed_end)));
  RETURN_IF_ERROR(SetMetaInt("tail_state", static_cast<int64_t>(TailState::kNone)));
  return Exec("COMMIT");
}

Status SqliteIndexDb::FinishRunRecord(const RunInfo& run, uint64_t committed_end) {
  auto lock = Lock();
  if (!record_) return FailedPreconditionError("index " + path_ + ": no run record is open");
  Status st = FinishLocked(run, committed_end);
  if (st.ok()) {
    record_.reset();
    return st;
  }
  AbortRunRecord();
  return st;
}

void SqliteIndexDb::AbortRunRecord() {
  auto lock = Lock();
  if (!record_) return;
  record_.reset();  // the statement is finalized before the rollback
  (void)Exec("ROLLBACK");
}

Status SqliteIndexDb::CommitRun(const RunInfo& run, const std::vector<Entry>& entries,
                                uint64_t committed_end) {
  auto lock = Lock();
  RETURN_IF_ERROR(CheckRunEntries(run, entries, committed_end));
  ASSIGN_OR_RETURN(uint64_t old_end, CommittedEnd());
  if (committed_end < old_end) {
    return InvalidArgumentError("CommitRun: committed end " + std::to_string(committed_end) +
                                " before the current " + std::to_string(old_end));
  }
  RETURN_IF_ERROR(BeginRunRecord(run));
  Status st = AddRunEntries(entries);
  if (!st.ok()) {
    AbortRunRecord();
    return st;
  }
  return FinishRunRecord(run, committed_end);
}

}  // namespace

Result<std::unique_ptr<IndexDb>> IndexDb::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    Status s = IOError("open index " + path + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close(db);
    return s;
  }
  auto idx = std::make_unique<SqliteIndexDb>(db, path);
  RETURN_IF_ERROR(idx->Init());
  return std::unique_ptr<IndexDb>(std::move(idx));
}

}  // namespace cyrsync::snapshot
