// Reindex (rebuild the index from the archive alone), OpenIndexForArchive, and the helpers that
// replace an index file.
#include "snapshot/archive_internal.h"
#include "snapshot/run_marker.h"

namespace cyrsync::snapshot {
namespace internal {
namespace {

Status EntryCorrupt(const Entry& e, const std::string& what) {
  return CorruptionError("entry \"" + e.name + "\" in the gzip member at offset " +
                         std::to_string(e.loc.member_offset) + ": " + what);
}

Status IgnoreNotFound(Status s) { return s.code() == Code::kNotFound ? Status::Ok() : s; }

}  // namespace

Status RunAssembler::Start(ScannedEntry& se) {
  const Entry& e = se.entry;
  if (open_) {
    return EntryCorrupt(e, "run " + std::to_string(open_->info.run_id) + " has no end marker");
  }
  if (!runs_.empty() && e.run_id <= runs_.back().info.run_id) {
    return EntryCorrupt(e, "run ids do not increase");
  }
  auto info = DecodeRunMarker(se.data, false);
  if (!info.ok()) return EntryCorrupt(e, info.error().message());
  if (info->run_id != e.run_id) return EntryCorrupt(e, "marker names another run");
  open_.emplace();
  open_->info = std::move(info).value();
  open_->entries.push_back(e);
  return Status::Ok();
}

Status RunAssembler::End(ScannedEntry& se, bool last_in_member) {
  const Entry& e = se.entry;
  auto name = ParseMarkerName(e.name);
  if (!open_ || name->run_id != open_->info.run_id) return EntryCorrupt(e, "end of no open run");
  if (!last_in_member) return EntryCorrupt(e, "end marker is not last in its member");
  auto info = DecodeRunMarker(se.data, true);
  if (!info.ok()) return EntryCorrupt(e, info.error().message());
  if (info->run_id != open_->info.run_id) return EntryCorrupt(e, "marker names another run");
  open_->info.finished = info->finished;
  open_->entries.push_back(e);
  open_->end = e.loc.member_offset + e.loc.member_length;
  runs_.push_back(std::move(*open_));
  open_.reset();
  return Status::Ok();
}

Status RunAssembler::AddMember(std::vector<ScannedEntry>& member) {
  for (size_t i = 0; i < member.size(); ++i) {
    ScannedEntry& se = member[i];
    auto marker = ParseMarkerName(se.entry.name);
    if (marker && !marker->end) {
      RETURN_IF_ERROR(Start(se));
    } else if (marker) {
      RETURN_IF_ERROR(End(se, i + 1 == member.size()));
    } else if (!open_) {
      return EntryCorrupt(se.entry, "outside any run");
    } else {
      open_->entries.push_back(se.entry);
    }
  }
  return Status::Ok();
}

std::vector<std::string> IndexSidecarFiles(const std::string& index_path) {
  return {index_path + "-journal", index_path + "-wal", index_path + "-shm"};
}

Status RemoveIndexFiles(Env* env, const std::string& path) {
  RETURN_IF_ERROR(IgnoreNotFound(env->Remove(path)));
  for (const std::string& f : IndexSidecarFiles(path)) {
    RETURN_IF_ERROR(IgnoreNotFound(env->Remove(f)));
  }
  return Status::Ok();
}

Status ReplaceIndexFile(Env* env, const std::string& from, const std::string& to) {
  for (const std::string& f : IndexSidecarFiles(to)) {
    RETURN_IF_ERROR(IgnoreNotFound(env->Remove(f)));
  }
  RETURN_IF_ERROR(env->Rename(from, to));
  return env->SyncDir(Dirname(to));
}

}  // namespace internal

namespace {

struct Scan {
  internal::RunAssembler runs;
  uint64_t size = 0;
};

// Walks the whole archive into complete runs. A member cut short by the end of the file is a
// torn append (left for the next BeginRun to cut); any other damage fails the rebuild, since
// runs after it could not be found and would later be cut away as an uncommitted tail.
Result<Scan> ScanRuns(Env* env, const std::string& archive_path) {
  ASSIGN_OR_RETURN(auto file, env->OpenRead(archive_path));
  ASSIGN_OR_RETURN(FileStat st, file->Stat());
  Scan scan;
  scan.size = st.size;
  internal::MemberCollector collector(
      internal::IsMarker,
      [&](std::vector<internal::ScannedEntry>& m) { return scan.runs.AddMember(m); });
  internal::WalkEnd end = internal::WalkArchive(file.get(), 0, FileCursor::kNoLimit, &collector);
  if (!end.status.ok() && !end.truncated) {
    return end.status.WithContext("reindex " + archive_path);
  }
  return scan;
}

Status WriteIndex(const std::string& path, Scan& scan) {
  ASSIGN_OR_RETURN(auto idx, IndexDb::Open(path));
  for (internal::AssembledRun& run : scan.runs.runs()) {
    RETURN_IF_ERROR(idx->CommitRun(run.info, run.entries, run.end));
  }
  // Bytes past the last complete run are an uncommitted tail: BeginRun may cut them.
  if (scan.size > scan.runs.committed_end()) {
    RETURN_IF_ERROR(idx->SetTailState(TailState::kRunPending));
  }
  return Status::Ok();
}

}  // namespace

Status Reindex(Env* env, const std::string& archive_path, const std::string& index_path) {
  ASSIGN_OR_RETURN(Scan scan, ScanRuns(env, archive_path));
  const std::string tmp = index_path + ".reindex-tmp";
  RETURN_IF_ERROR(internal::RemoveIndexFiles(env, tmp));
  Status st = WriteIndex(tmp, scan);
  if (!st.ok()) {
    (void)internal::RemoveIndexFiles(env, tmp);
    return st;
  }
  return internal::ReplaceIndexFile(env, tmp, index_path);
}

Result<std::unique_ptr<IndexDb>> OpenIndexForArchive(Env* env, const std::string& archive_path,
                                                     const std::string& index_path) {
  ASSIGN_OR_RETURN(uint64_t size, internal::ArchiveSize(env, archive_path));
  auto idx = IndexDb::Open(index_path);
  Status check = idx.ok() ? internal::CheckIndexMatchesArchive(env, archive_path, idx->get(), size)
                          : idx.error();
  if (check.ok()) return std::move(idx).value();
  // Rebuild only a mismatched or unreadable index; not one from a newer schema, and not on
  // I/O errors of the check.
  if (idx.ok() ? check.code() != Code::kFailedPrecondition
               : check.code() == Code::kFailedPrecondition) {
    return check;
  }
  if (idx.ok()) idx->reset();  // SQLite must let go of the file before it is replaced
  Status rebuilt = Reindex(env, archive_path, index_path);
  if (!rebuilt.ok()) return rebuilt.WithContext(check.message());
  ASSIGN_OR_RETURN(auto fresh, IndexDb::Open(index_path));
  RETURN_IF_ERROR(internal::CheckIndexMatchesArchive(env, archive_path, fresh.get(), size));
  return fresh;
}

}  // namespace cyrsync::snapshot
