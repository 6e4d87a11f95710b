// Private pieces shared by the archive's writer, readers, Reindex, Verify and Compact: the
// member appender, the member-by-member walker, and the index/archive pair check. Not part of
// the public interface (archive.h). Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/hash.h"
#include "common/status.h"
#include "snapshot/archive.h"
#include "snapshot/gzip_member.h"
#include "snapshot/tar.h"

namespace cyrsync::snapshot::internal {

// Archive names are relative paths: non-empty, at most kMaxNameSize bytes, no NUL, no leading
// or trailing '/', no empty, "." or ".." component. kInvalidArgument otherwise.
inline constexpr size_t kMaxNameSize = 4096;
Status ValidateEntryName(std::string_view name);

// Writes entries as tar into gzip members appended to a file (the member rule of
// doc/formats/archive.md §Members). A member cut because it reached member_target is compressed
// on a background thread while the next one fills; members reach the file in order, from the
// caller's thread only. Errors are sticky: after one, every call fails, because the file may end
// inside a member.
class ArchiveAppender {
 public:
  // Receives each member's entries, with their final locations, once the member is written to
  // the file (not yet synced); an error is sticky like the appender's own.
  using MemberSink = std::function<Status(std::vector<Entry>&& entries)>;

  // file: open for append; start: its current size (where the first member will begin).
  static Result<std::unique_ptr<ArchiveAppender>> Create(std::unique_ptr<WritableFile> file,
                                                         uint64_t start, const WriterOptions& opts,
                                                         MemberSink sink);
  ~ArchiveAppender();
  ArchiveAppender(const ArchiveAppender&) = delete;
  ArchiveAppender& operator=(const ArchiveAppender&) = delete;

  // Appends e (name, kind, link_target, mtime, mode, run_id) with data, starting a new member
  // first when the current one already holds member_target uncompressed bytes. Fills in the
  // recorded copy's sha1 (files) and, once its member is written, its location.
  Status Add(const Entry& e, std::string_view data);
  // Finishes the current member (no-op when it holds no entry) and writes it, and any member
  // still being compressed, to the file.
  Status EndMember();
  // EndMember, then fdatasync: every finished member is durable.
  Status Sync();
  Status Close();
  uint64_t end() const { return end_; }  // archive offset after the last member written

 private:
  // A member handed to the background thread: its deflater and its entries [first, last)
  // (counted from the appender's first entry).
  struct Pending {
    std::unique_ptr<MemberDeflater> deflater;
    std::future<Status> compressed;
    size_t first = 0, last = 0;
  };

  ArchiveAppender(std::unique_ptr<WritableFile> file, std::unique_ptr<MemberDeflater> d,
                  std::unique_ptr<MemberDeflater> spare, uint64_t start, const WriterOptions& opts,
                  MemberSink sink);
  Status AddEntry(const Entry& e, std::string_view data);
  Status CutMember();
  Status FinishMember();
  Status CollectPending();
  Status WriteMember(MemberDeflater* d, size_t first, size_t last);

  std::unique_ptr<WritableFile> file_;
  std::unique_ptr<MemberDeflater> deflater_;  // the member being filled
  std::unique_ptr<MemberDeflater> spare_;     // ready for the next member while one compresses
  std::optional<Pending> pending_;
  WriterOptions opts_;
  Status status_;
  uint64_t end_;              // archive offset after the last member written
  bool member_open_ = false;  // the deflater holds a started member
  size_t member_first_ = 0;   // number of the open member's first entry
  size_t written_ = 0;        // entries handed to the sink: entries_[0] is entry number written_
  std::vector<Entry> entries_;  // of the members not yet written
  MemberSink sink_;
};

// Receives an archive's contents in order while WalkArchive inflates it. Entries reported for
// a member that then turns out damaged must be discarded by the visitor (OnMemberEnd is the
// commit point of a member).
class ArchiveVisitor {
 public:
  virtual ~ArchiveVisitor() = default;
  // loc has member_offset, data_offset and size; member_length is known at OnMemberEnd.
  virtual Status OnEntry(const TarHeader& h, const EntryLocation& loc) = 0;
  virtual Status OnData(std::string_view chunk) = 0;
  virtual Status OnEntryEnd() = 0;
  virtual Status OnMemberEnd(uint64_t offset, uint64_t length) = 0;
};

struct WalkEnd {
  Status status;           // ok at a clean end (file end or limit), else the first problem
  bool truncated = false;  // the problem is a member cut short by the end of the file
  uint64_t offset = 0;     // where the walk stopped: after the last good member
  uint64_t members = 0;    // complete members walked
};

// Walks members from `start` until the end of file or `limit`. Damage is kCorruption naming
// the member's offset; errors returned by the visitor are passed through unchanged.
WalkEnd WalkArchive(ReadableFile* file, uint64_t start, uint64_t limit, ArchiveVisitor* v);

struct ScannedEntry {
  Entry entry;       // run_id: from the last run marker seen ("runs/<id>.json"), else 0
  std::string data;  // only when captured
};

// An ArchiveVisitor that hashes every file entry and hands over each member's entries (with
// final locations, and the data of entries the capture predicate selects) when it ends cleanly.
class MemberCollector final : public ArchiveVisitor {
 public:
  using CaptureFn = std::function<bool(const Entry&)>;
  using MemberFn = std::function<Status(std::vector<ScannedEntry>& entries)>;
  MemberCollector(CaptureFn capture, MemberFn on_member)
      : capture_(std::move(capture)), on_member_(std::move(on_member)) {}

  Status OnEntry(const TarHeader& h, const EntryLocation& loc) override;
  Status OnData(std::string_view chunk) override;
  Status OnEntryEnd() override;
  Status OnMemberEnd(uint64_t offset, uint64_t length) override;
  // Forgets the entries of a member that did not end cleanly (before resuming elsewhere).
  void DropPartialMember() { pending_.clear(); }

 private:
  CaptureFn capture_;
  MemberFn on_member_;
  std::vector<ScannedEntry> pending_;
  std::unique_ptr<Sha1Hasher> hasher_;
  bool capturing_ = false;
  int64_t run_id_ = 0;
};

// Captures the data of run markers (for MemberCollector).
bool IsMarker(const Entry& e);

// Groups walked entries into runs by their markers, as Reindex and Verify need them.
struct AssembledRun {
  RunInfo info;
  std::vector<Entry> entries;  // markers included, archive order
  uint64_t end = 0;            // archive offset after the member holding the end marker
};
class RunAssembler {
 public:
  // One member's entries, in order, with run markers captured. kCorruption (naming the offset)
  // for an entry outside any run, a start marker while a run is open, run ids that do not
  // increase, an end marker of another run or not last in its member, or a bad marker.
  Status AddMember(std::vector<ScannedEntry>& member);
  std::vector<AssembledRun>& runs() { return runs_; }
  // A run was started and not ended (a torn or uncommitted tail).
  bool run_open() const { return open_.has_value(); }
  uint64_t committed_end() const { return runs_.empty() ? 0 : runs_.back().end; }

 private:
  Status Start(ScannedEntry& se);
  Status End(ScannedEntry& se, bool last_in_member);

  std::vector<AssembledRun> runs_;
  std::optional<AssembledRun> open_;
};

// Checks that index describes the archive (archive_size bytes, 0 when absent): tail state and
// committed end agree with the file, and the last run's end marker is where the index says.
// kFailedPrecondition when they do not; other codes for I/O errors.
Status CheckIndexMatchesArchive(Env* env, const std::string& archive_path, IndexDb* index,
                                uint64_t archive_size);

// Files SQLite may keep beside an index ("-journal", "-wal", "-shm").
std::vector<std::string> IndexSidecarFiles(const std::string& index_path);
// Removes path and its SQLite side files, ignoring those that do not exist.
Status RemoveIndexFiles(Env* env, const std::string& path);
// Durability point. Moves a closed, complete index file from `from` over `to`: removes the
// side files of `to` (a stale journal must not be replayed into the new file), renames, fsyncs
// the directory. After a crash, `to` is the old or the new index (the old one possibly without
// its hot journal, so torn: OpenIndexForArchive then rebuilds it).
Status ReplaceIndexFile(Env* env, const std::string& from, const std::string& to);

// Archive size, 0 when the file does not exist.
Result<uint64_t> ArchiveSize(Env* env, const std::string& path);

}  // namespace cyrsync::snapshot::internal
