// ArchiveWriter (BeginRun/Add*/Commit) and the index/archive pair check it starts with.
#include "snapshot/archive.h"

#include "snapshot/archive_internal.h"
#include "snapshot/run_marker.h"
#include "snapshot/run_recorder.h"

namespace cyrsync::snapshot {
namespace internal {
namespace {

Status Mismatch(const std::string& archive_path, const std::string& what) {
  return FailedPreconditionError("index does not describe archive " + archive_path + ": " + what +
                                 " (rebuild it with Reindex)");
}

// The last committed run's end marker must be the member that ends at the committed end.
Status CheckLastEndMarker(Env* env, const std::string& path, IndexDb* index, uint64_t end) {
  ASSIGN_OR_RETURN(std::vector<RunInfo> runs, index->Runs());
  if (runs.empty()) return Mismatch(path, "committed end " + std::to_string(end) + " but no runs");
  const int64_t last = runs.back().run_id;
  ASSIGN_OR_RETURN(std::optional<Entry> marker, index->Latest(RunEndMarkerName(last)));
  if (!marker || marker->loc.member_offset + marker->loc.member_length != end) {
    return Mismatch(path, "run " + std::to_string(last) + " has no end marker ending at offset " +
                              std::to_string(end));
  }
  auto data = ReadEntry(env, path, *marker);
  if (!data.ok()) {
    if (data.error().code() != Code::kCorruption) return data.error();
    return Mismatch(path, data.error().message());
  }
  auto decoded = DecodeRunMarker(*data, true);
  if (!decoded.ok() || decoded->run_id != last) {
    return Mismatch(path, "end marker of run " + std::to_string(last) + " at offset " +
                              std::to_string(marker->loc.member_offset) + " is not that run's");
  }
  return Status::Ok();
}

}  // namespace

Status CheckIndexMatchesArchive(Env* env, const std::string& archive_path, IndexDb* index,
                                uint64_t archive_size) {
  ASSIGN_OR_RETURN(TailState state, index->GetTailState());
  ASSIGN_OR_RETURN(uint64_t committed, index->CommittedEnd());
  if (state == TailState::kSwapping) {
    return Mismatch(archive_path, "a compaction was interrupted while replacing the pair");
  }
  if (archive_size < committed) {
    return Mismatch(archive_path, "archive has " + std::to_string(archive_size) +
                                      " bytes, the index committed " + std::to_string(committed));
  }
  if (archive_size > committed && state != TailState::kRunPending) {
    return Mismatch(archive_path, std::to_string(archive_size - committed) +
                                      " bytes past the committed end at offset " +
                                      std::to_string(committed) + " and no run pending");
  }
  if (committed == 0) return Status::Ok();
  return CheckLastEndMarker(env, archive_path, index, committed);
}

}  // namespace internal

namespace {

int64_t NowSeconds(Env* env) { return env->NowNanos() / 1000000000; }

class WriterImpl final : public ArchiveWriter {
 public:
  WriterImpl(Env* env, std::string path, RunInfo run, bool created,
             std::unique_ptr<internal::RunRecorder> recorder)
      : env_(env),
        path_(std::move(path)),
        run_(std::move(run)),
        created_(created),
        recorder_(std::move(recorder)) {}

  Status Open(std::unique_ptr<WritableFile> file, uint64_t committed, const WriterOptions& opts);

  Status WriteStartMarker();
  Status AddFile(std::string_view name, std::string_view data, int64_t mtime,
                 uint32_t mode) override;
  Status AddVerifiedFile(std::string_view name, std::string_view data, std::string_view sha1_hex,
                         int64_t mtime) override;
  Status AddSymlink(std::string_view name, std::string_view target, int64_t mtime) override;
  Result<RunInfo> Commit() override;
  const RunInfo& run() const override { return run_; }

 private:
  Status CheckUserEntry(std::string_view name) const;
  Status WriteEndAndSync();

  Env* env_;
  std::string path_;
  RunInfo run_;
  bool created_;       // first run: the file's directory entry needs a SyncDir
  bool done_ = false;  // Commit was called: a second end marker would break the run structure
  std::unique_ptr<internal::RunRecorder> recorder_;  // outlives app_, which feeds it
  std::unique_ptr<internal::ArchiveAppender> app_;
};

// Each member's entries go to the index record as soon as the member is written.
Status WriterImpl::Open(std::unique_ptr<WritableFile> file, uint64_t committed,
                        const WriterOptions& opts) {
  internal::RunRecorder* rec = recorder_.get();
  ASSIGN_OR_RETURN(app_, internal::ArchiveAppender::Create(
                             std::move(file), committed, opts,
                             [rec](std::vector<Entry>&& e) { return rec->Add(std::move(e)); }));
  return Status::Ok();
}

Entry MarkerEntry(const std::string& name, const RunInfo& run, int64_t mtime) {
  Entry e;
  e.name = name;
  e.mtime = mtime;
  e.mode = 0600;
  e.run_id = run.run_id;
  return e;
}

// The start marker gets a member of its own, so every run begins on a member boundary.
Status WriterImpl::WriteStartMarker() {
  RETURN_IF_ERROR(app_->Add(MarkerEntry(RunMarkerName(run_.run_id), run_, run_.started),
                            EncodeRunMarker(run_)));
  return app_->EndMember();
}

Status WriterImpl::CheckUserEntry(std::string_view name) const {
  if (done_) return FailedPreconditionError("archive " + path_ + ": run already committed");
  if (name.starts_with("runs/")) {
    return InvalidArgumentError("archive entry name \"" + std::string(name) +
                                "\": runs/ is reserved for run markers");
  }
  return Status::Ok();
}

Status WriterImpl::AddFile(std::string_view name, std::string_view data, int64_t mtime,
                           uint32_t mode) {
  RETURN_IF_ERROR(CheckUserEntry(name));
  Entry e;
  e.name = std::string(name);
  e.mtime = mtime;
  e.mode = mode;
  e.run_id = run_.run_id;
  return app_->Add(e, data);
}

Status WriterImpl::AddVerifiedFile(std::string_view name, std::string_view data,
                                   std::string_view sha1_hex, int64_t mtime) {
  RETURN_IF_ERROR(CheckUserEntry(name));
  Entry e;
  e.name = std::string(name);
  e.mtime = mtime;
  e.mode = 0600;
  e.run_id = run_.run_id;
  e.sha1 = std::string(sha1_hex);
  return app_->Add(e, data);
}

Status WriterImpl::AddSymlink(std::string_view name, std::string_view target, int64_t mtime) {
  RETURN_IF_ERROR(CheckUserEntry(name));
  Entry e;
  e.name = std::string(name);
  e.kind = EntryKind::kSymlink;
  e.link_target = std::string(target);
  e.mtime = mtime;
  e.run_id = run_.run_id;
  return app_->Add(e, {});
}

// The end marker also gets its own member: the committed end is always the end of a tiny
// member that CheckIndexMatchesArchive can read cheaply.
Status WriterImpl::WriteEndAndSync() {
  RETURN_IF_ERROR(app_->EndMember());
  run_.finished = NowSeconds(env_);
  RETURN_IF_ERROR(app_->Add(MarkerEntry(RunEndMarkerName(run_.run_id), run_, run_.finished),
                            EncodeRunEndMarker(run_)));
  RETURN_IF_ERROR(app_->Sync());
  RETURN_IF_ERROR(app_->Close());
  if (created_) RETURN_IF_ERROR(env_->SyncDir(Dirname(path_)));
  return Status::Ok();
}

// Durability point: after a crash at any step, the index refers to no byte past the last
// fsynced archive offset, because the run's record (one SQLite transaction, filled while the
// run was written) commits only after the sync.
// Commit is attempted once: after a failure the run stays uncommitted (its tail is cut by the
// next BeginRun), because a retry would append a second end marker.
Result<RunInfo> WriterImpl::Commit() {
  if (done_) return FailedPreconditionError("archive " + path_ + ": Commit already called");
  done_ = true;
  RETURN_IF_ERROR(WriteEndAndSync());
  RETURN_IF_ERROR(recorder_->Finish(run_, app_->end()));
  return run_;
}

// Cuts an uncommitted tail (only after CheckIndexMatchesArchive allowed it) and opens the
// archive for appending.
Result<std::unique_ptr<WritableFile>> OpenForRun(Env* env, const std::string& path, uint64_t size,
                                                 uint64_t committed) {
  if (size > committed) RETURN_IF_ERROR(env->Truncate(path, committed));
  return env->NewAppendable(path, 0600);
}

}  // namespace

Result<std::unique_ptr<ArchiveWriter>> ArchiveWriter::BeginRun(Env* env,
                                                               const std::string& archive_path,
                                                               IndexDb* index, RunInfo info,
                                                               const WriterOptions& opts) {
  if (opts.compression_level < 0 || opts.compression_level > 9 || opts.member_target == 0) {
    return InvalidArgumentError("archive " + archive_path + ": bad writer options");
  }
  auto exists = env->Stat(archive_path);
  if (!exists.ok() && exists.error().code() != Code::kNotFound) return exists.error();
  const uint64_t size = exists.ok() ? exists->size : 0;
  RETURN_IF_ERROR(internal::CheckIndexMatchesArchive(env, archive_path, index, size));
  ASSIGN_OR_RETURN(uint64_t committed, index->CommittedEnd());
  ASSIGN_OR_RETURN(std::vector<RunInfo> runs, index->Runs());
  info.run_id = runs.empty() ? 1 : runs.back().run_id + 1;
  if (info.started == 0) info.started = NowSeconds(env);
  info.finished = 0;
  // Recorded before the archive grows, so a crash from here on leaves a tail that is ours to cut.
  RETURN_IF_ERROR(index->SetTailState(TailState::kRunPending));
  ASSIGN_OR_RETURN(auto file, OpenForRun(env, archive_path, size, committed));
  ASSIGN_OR_RETURN(auto recorder, internal::RunRecorder::Start(index, info));
  // The first run may have created the file (now or before a crash): sync its directory entry.
  auto w = std::make_unique<WriterImpl>(env, archive_path, std::move(info), committed == 0,
                                        std::move(recorder));
  RETURN_IF_ERROR(w->Open(std::move(file), committed, opts));
  RETURN_IF_ERROR(w->WriteStartMarker());
  return std::unique_ptr<ArchiveWriter>(std::move(w));
}

}  // namespace cyrsync::snapshot
