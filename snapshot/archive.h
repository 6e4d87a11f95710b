// The per-user snapshot archive (doc/formats/archive.md): an append-only file of gzip members,
// each holding tar entries without end-of-archive blocks, so GNU `tar tzf`/`tar xzf` read the
// whole concatenation; plus a SQLite index (doc/formats/index_schema.md) that can be rebuilt
// from the archive alone. A run appends one or more members (a new member starts every
// `member_target` uncompressed bytes so one entry can be read without inflating the whole run).
//
// Threading: one ArchiveWriter per archive at a time (callers serialise per user); readers may
// run concurrently with each other but not with a writer or compaction of the same archive.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace cyrsync::snapshot {

inline constexpr uint32_t kArchiveFormatVersion = 2;
// GNU tar cannot extract a symlink with an empty target (it fails with ENOENT, exit 2), so a
// folder name that no longer exists is recorded as a link to the canonical empty file.
inline constexpr std::string_view kTombstoneTarget = "/dev/null";

enum class EntryKind : uint8_t { kFile = 0, kSymlink = 1 };

// Where an entry's bytes are: the gzip member that holds it (compressed offset in the archive
// file) and the offset of its data within that member's uncompressed tar stream.
struct EntryLocation {
  uint64_t member_offset = 0;
  uint64_t member_length = 0;  // compressed bytes of that member
  uint64_t data_offset = 0;    // uncompressed, within the member
  uint64_t size = 0;           // bytes of data (0 for symlinks)
};

struct Entry {
  std::string name;  // "files/<sha1>", "folders/<uniqueid>/cyrus.index", "imap/<path>", ...
  EntryKind kind = EntryKind::kFile;
  std::string link_target;  // symlinks
  std::string sha1;         // hex sha1 of the data (files), "" for symlinks
  int64_t mtime = 0;        // seconds since the epoch, UTC
  uint32_t mode = 0600;
  int64_t run_id = 0;
  EntryLocation loc;
};

struct RunInfo {
  int64_t run_id = 0;   // assigned by BeginRun (max existing + 1)
  int64_t started = 0;  // unix seconds (UTC)
  int64_t finished = 0;
  std::string source;   // which slot served the data, e.g. "replica 10.0.0.2:7401"
  std::string user;
};

struct WriterOptions {
  int compression_level = 1;                 // 0-9 as zlib's; 1 is the throughput default
  uint64_t member_target = uint64_t{1} << 20;  // start a new gzip member after this much input
};

class IndexDb;

// What an index knows about archive bytes past its CommittedEnd (doc/formats/index_schema.md).
// Addition to the original interface: lets BeginRun tell a crashed run's tail (safe to cut) from
// an archive the index does not describe (never cut; Reindex instead).
enum class TailState : uint8_t {
  kNone = 0,        // the archive should end at CommittedEnd
  kRunPending = 1,  // a run was begun: bytes past CommittedEnd are uncommitted and may be cut
  kSwapping = 2,    // a compaction was replacing this pair: the archive may be the new one
};

// Appends one run. Nothing the run adds is visible to IndexDb readers before Commit().
class ArchiveWriter {
 public:
  virtual ~ArchiveWriter() = default;
  // Opens (creating when absent) archive_path and its index. If the archive file is longer than
  // the indexed end (a crash after appending, before the index commit), the unindexed tail is
  // truncated away first: it was never committed. The run's first entry is the marker
  // "runs/<run_id>.json".
  // The tail is cut only when the index recorded that a run was begun (TailState::kRunPending,
  // set durably here before the archive grows). An index that does not describe the archive
  // (archive shorter than CommittedEnd, unexplained tail, kSwapping, last end marker missing) is
  // kFailedPrecondition and nothing is changed: open the index with OpenIndexForArchive.
  // info.run_id is ignored; info.started = 0 means "now" (env->NowNanos()).
  // REQUIRES: env and index outlive the writer.
  static Result<std::unique_ptr<ArchiveWriter>> BeginRun(Env* env, const std::string& archive_path,
                                                         IndexDb* index, RunInfo info,
                                                         const WriterOptions& opts = {});
  virtual Status AddFile(std::string_view name, std::string_view data, int64_t mtime,
                         uint32_t mode = 0600) = 0;
  // As AddFile, for data the caller has just checked to hash to sha1_hex (a message against its
  // GUID): the SHA-1 is not computed a second time.
  virtual Status AddVerifiedFile(std::string_view name, std::string_view data,
                                 std::string_view sha1_hex, int64_t mtime) = 0;
  virtual Status AddSymlink(std::string_view name, std::string_view target, int64_t mtime) = 0;
  // Durability point: finishes the current member, fsyncs the archive, then commits the run's
  // index record (its entries were inserted, uncommitted, as their members were written). After
  // a crash at any point the index never refers to bytes past the last synced archive offset.
  virtual Result<RunInfo> Commit() = 0;
  virtual const RunInfo& run() const = 0;
};

// The SQLite index of one archive. Thread-safe: calls are serialised, so a run record may be fed
// from one thread while another asks HasFile/Latest (which see the open record's entries).
class IndexDb {
 public:
  virtual ~IndexDb() = default;
  static Result<std::unique_ptr<IndexDb>> Open(const std::string& path);

  virtual Result<std::vector<RunInfo>> Runs() = 0;
  // Is a message with this sha1 already stored?
  virtual Result<bool> HasFile(std::string_view sha1) = 0;
  // The newest version of an entry as of run `as_of` (0 = latest).
  virtual Result<std::optional<Entry>> Latest(std::string_view name, int64_t as_of = 0) = 0;
  // Newest version of every entry whose name starts with prefix, as of a run (0 = latest).
  virtual Result<std::vector<Entry>> LatestUnder(std::string_view prefix, int64_t as_of = 0) = 0;
  // Every entry of every run, in archive order.
  virtual Result<std::vector<Entry>> AllEntries() = 0;
  // Archive bytes known to be committed (the end of the last committed member).
  virtual Result<uint64_t> CommittedEnd() = 0;
  virtual Result<int64_t> LastCompaction() = 0;  // unix seconds, 0 = never

  // Used by ArchiveWriter / Reindex / Compact. CommitRun = BeginRunRecord, AddRunEntries,
  // FinishRunRecord; its inconsistent input is refused before anything is written.
  virtual Status CommitRun(const RunInfo& run, const std::vector<Entry>& entries,
                           uint64_t committed_end) = 0;
  // A run recorded in steps, so a writer can insert each member's entries while the next ones
  // are written: one write transaction from Begin to Finish, so nothing of the run is visible
  // to other connections, or survives a crash, before FinishRunRecord commits it. Only one
  // record is open at a time; AbortRunRecord (or destroying the IndexDb) rolls it back.
  // Finish refuses (and rolls back) an entry of another run, one past committed_end, or a
  // committed_end before the current one.
  virtual Status BeginRunRecord(const RunInfo& run) = 0;
  virtual Status AddRunEntries(const std::vector<Entry>& entries) = 0;
  virtual Status FinishRunRecord(const RunInfo& run, uint64_t committed_end) = 0;
  virtual void AbortRunRecord() = 0;
  virtual Status SetLastCompaction(int64_t when) = 0;

  // Additions to the original interface (see TailState). CommitRun resets the state to kNone
  // in its transaction; SetTailState is itself a durability point (one committed transaction).
  virtual Result<TailState> GetTailState() = 0;
  virtual Status SetTailState(TailState state) = 0;
};

// Addition to the original interface. Opens the index at index_path for archive_path and checks
// that it describes that archive (its committed end, tail state and last run's end marker);
// when it does not (lost index, a compaction interrupted between its two renames, an index of
// another archive) the index is rebuilt with Reindex first. Errors: those of Reindex (e.g.
// kCorruption for a damaged archive, which then keeps its old index untouched).
Result<std::unique_ptr<IndexDb>> OpenIndexForArchive(Env* env, const std::string& archive_path,
                                                     const std::string& index_path);

// Reads one entry's data by seeking to its member and inflating only that member up to the
// entry (never the whole archive). Verifies the data's sha1 when the entry has one. For a
// symlink, returns its target as stored in the archive. The header found at the location must
// name the entry (kCorruption otherwise).
Result<std::string> ReadEntry(Env* env, const std::string& archive_path, const Entry& e);

// Walks the archive from the start, member by member, calling fn for each entry with its
// location. Stops with kCorruption naming the byte offset at the first damaged member; entries
// before it have been delivered (the readable part stays usable).
Status ScanArchive(Env* env, const std::string& archive_path,
                   const std::function<Status(const Entry&)>& fn);

// Rebuilds the index at index_path from the archive alone (runs from their markers).
Status Reindex(Env* env, const std::string& archive_path, const std::string& index_path);

struct VerifyReport {
  uint64_t members = 0;
  uint64_t entries = 0;
  std::vector<std::string> problems;  // "<what> at offset <n>"
  bool ok() const { return problems.empty(); }
};
// Checks every member inflates, every files/<sha1> entry's content hashes to its name, and that
// the index and the archive agree entry for entry.
Result<VerifyReport> Verify(Env* env, const std::string& archive_path, IndexDb* index);

struct CompactPolicy {
  int64_t now = 0;                          // unix seconds
  int64_t retention_seconds = 30 * 86400;   // keep deletions younger than this
  double base_threshold = 0.80;             // compact when live share < threshold
  double weekly_increase = 0.01;            // threshold rises this much per week since last
  bool force = false;
};
struct CompactResult {
  bool compacted = false;
  double live_share = 1.0;
  double threshold = 0.0;
  uint64_t bytes_before = 0, bytes_after = 0;
};
// Rewrites the archive keeping only live records, when the live share (live bytes / all bytes)
// is below the threshold (base + weekly_increase per week since the last compaction). Live:
// every run marker; the latest version of each imap/ link (a tombstone only while younger than
// retention); the latest folders/<uniqueid>/* of every folder some kept link points to, or
// whose tombstone is still retained; the latest user/* and sieve/* entries; and each
// files/<sha1> named by a GUID in a kept cyrus.index (parsed with cyrus::ParseIndex) or by a
// kept guid map (snapshot/guid_map.h).
// Crash-safe: the old archive and index stay valid until the new pair is durable; then they
// replace the old ones (an index that does not match its archive is rebuilt with Reindex).
Result<CompactResult> Compact(Env* env, const std::string& archive_path,
                              const std::string& index_path, const CompactPolicy& policy);

}  // namespace cyrsync::snapshot
