// Compact: rewrite the archive with only its live records (compact_live.cc decides which), build
// the matching index, and swap the new pair in.
#include <algorithm>
#include <map>

#include "snapshot/archive_internal.h"
#include "snapshot/compact_live.h"
#include "snapshot/run_marker.h"

namespace cyrsync::snapshot {
namespace {

using internal::EntryKey;

constexpr double kSecondsPerWeek = 7 * 86400.0;
constexpr std::string_view kTmpSuffix = ".compact-tmp";

double Threshold(const CompactPolicy& p, int64_t last, const std::vector<RunInfo>& runs) {
  const int64_t since = last != 0 ? last : (runs.empty() ? p.now : runs.front().started);
  const double weeks = static_cast<double>(std::max<int64_t>(0, p.now - since)) / kSecondsPerWeek;
  return std::min(1.0, p.base_threshold + p.weekly_increase * weeks);
}

// Re-appends the kept entries of the old archive, in archive order, with the index's metadata
// (run ids included); each run marker gets a member of its own, as ArchiveWriter writes them.
class Copier final : public internal::ArchiveVisitor {
 public:
  Copier(const std::map<EntryKey, Entry>& kept, internal::ArchiveAppender* app)
      : kept_(kept), app_(app) {}
  Status OnEntry(const TarHeader& h, const EntryLocation& loc) override;
  Status OnData(std::string_view chunk) override;
  Status OnEntryEnd() override;
  Status OnMemberEnd(uint64_t, uint64_t) override { return Status::Ok(); }
  size_t copied() const { return copied_; }

 private:
  const std::map<EntryKey, Entry>& kept_;
  internal::ArchiveAppender* app_;
  const Entry* current_ = nullptr;
  std::string data_;
  size_t copied_ = 0;
};

Status Copier::OnEntry(const TarHeader& h, const EntryLocation& loc) {
  auto it = kept_.find({loc.member_offset, loc.data_offset});
  current_ = it == kept_.end() ? nullptr : &it->second;
  data_.clear();
  if (current_ && (h.name != current_->name || h.size != current_->loc.size ||
                   h.kind != current_->kind || h.link_target != current_->link_target)) {
    return CorruptionError("compact: archive has \"" + h.name + "\" where the index has \"" +
                           current_->name + "\" (member at offset " +
                           std::to_string(loc.member_offset) + ")");
  }
  return Status::Ok();
}

Status Copier::OnData(std::string_view chunk) {
  if (current_) data_.append(chunk);
  return Status::Ok();
}

Status Copier::OnEntryEnd() {
  if (!current_) return Status::Ok();
  const Entry& e = *current_;
  if (e.kind == EntryKind::kFile && Sha1Hex(data_) != e.sha1) {
    return CorruptionError("compact: sha1 mismatch for " + e.name + " in the member at offset " +
                           std::to_string(e.loc.member_offset));
  }
  const bool marker = ParseMarkerName(e.name).has_value();
  if (marker) RETURN_IF_ERROR(app_->EndMember());
  RETURN_IF_ERROR(app_->Add(e, data_));
  if (marker) RETURN_IF_ERROR(app_->EndMember());
  ++copied_;
  current_ = nullptr;
  return Status::Ok();
}

struct Paths {
  std::string archive, index, tmp_archive, tmp_index;
};

Status RemoveTemps(Env* env, const Paths& p) {
  Status st = env->Remove(p.tmp_archive);
  if (!st.ok() && st.code() != Code::kNotFound) return st;
  return internal::RemoveIndexFiles(env, p.tmp_index);
}

// Writes and fsyncs the compacted archive; returns its entries with their new locations.
Result<std::vector<Entry>> WriteArchive(Env* env, const Paths& p, uint64_t committed,
                                        const std::map<EntryKey, Entry>& kept) {
  ASSIGN_OR_RETURN(auto out, env->NewWritable(p.tmp_archive, 0600));
  std::vector<Entry> written;
  auto keep = [&written](std::vector<Entry>&& member) {
    written.insert(written.end(), std::make_move_iterator(member.begin()),
                   std::make_move_iterator(member.end()));
    return Status::Ok();
  };
  ASSIGN_OR_RETURN(auto app,
                   internal::ArchiveAppender::Create(std::move(out), 0, WriterOptions{}, keep));
  ASSIGN_OR_RETURN(auto in, env->OpenRead(p.archive));
  Copier copier(kept, app.get());
  internal::WalkEnd end = internal::WalkArchive(in.get(), 0, committed, &copier);
  if (!end.status.ok()) return end.status.WithContext("compact " + p.archive);
  if (copier.copied() != kept.size()) {
    return CorruptionError("compact " + p.archive + ": found " + std::to_string(copier.copied()) +
                           " of " + std::to_string(kept.size()) + " live entries");
  }
  RETURN_IF_ERROR(app->Sync());
  RETURN_IF_ERROR(app->Close());
  return written;
}

// Builds the new index: the same runs, each with its kept entries.
Status WriteIndex(const Paths& p, const std::vector<RunInfo>& runs,
                  const std::vector<Entry>& entries, int64_t now) {
  ASSIGN_OR_RETURN(auto idx, IndexDb::Open(p.tmp_index));
  size_t i = 0;
  for (const RunInfo& run : runs) {
    std::vector<Entry> mine;
    uint64_t end = 0;
    for (; i < entries.size() && entries[i].run_id == run.run_id; ++i) {
      mine.push_back(entries[i]);
      end = entries[i].loc.member_offset + entries[i].loc.member_length;
    }
    RETURN_IF_ERROR(idx->CommitRun(run, mine, end));
  }
  if (i != entries.size()) return InternalError("compact: entries out of run order");
  return idx->SetLastCompaction(now);
}

// Durability point. Both new files are durable before anything is replaced. The old index is
// marked kSwapping first, so a crash between the two renames (new archive, old index) is seen
// as a mismatch and the index is rebuilt from whichever archive is in place.
Status SwapPair(Env* env, const Paths& p, std::unique_ptr<IndexDb> old_index) {
  RETURN_IF_ERROR(env->SyncDir(Dirname(p.tmp_archive)));
  RETURN_IF_ERROR(env->SyncDir(Dirname(p.tmp_index)));
  RETURN_IF_ERROR(old_index->SetTailState(TailState::kSwapping));
  Status st = env->Rename(p.tmp_archive, p.archive);
  if (!st.ok()) {
    (void)old_index->SetTailState(TailState::kNone);  // the old pair is still the pair
    return st;
  }
  old_index.reset();  // closed before its file is replaced
  RETURN_IF_ERROR(internal::ReplaceIndexFile(env, p.tmp_index, p.index));
  if (Dirname(p.archive) != Dirname(p.index)) return env->SyncDir(Dirname(p.archive));
  return Status::Ok();
}

Status BuildAndSwap(Env* env, const Paths& p, std::unique_ptr<IndexDb> idx,
                    const std::vector<Entry>& entries, const internal::LiveSet& live, int64_t now) {
  std::map<EntryKey, Entry> kept;
  for (const Entry& e : entries) {
    if (live.keep.count(internal::KeyOf(e)) > 0) kept.emplace(internal::KeyOf(e), e);
  }
  ASSIGN_OR_RETURN(uint64_t committed, idx->CommittedEnd());
  ASSIGN_OR_RETURN(std::vector<RunInfo> runs, idx->Runs());
  ASSIGN_OR_RETURN(std::vector<Entry> written, WriteArchive(env, p, committed, kept));
  RETURN_IF_ERROR(WriteIndex(p, runs, written, now));
  return SwapPair(env, p, std::move(idx));
}

}  // namespace

Result<CompactResult> Compact(Env* env, const std::string& archive_path,
                              const std::string& index_path, const CompactPolicy& policy_in) {
  CompactPolicy policy = policy_in;
  if (policy.now == 0) policy.now = env->NowNanos() / 1000000000;
  Paths p{archive_path, index_path, archive_path + std::string(kTmpSuffix),
          index_path + std::string(kTmpSuffix)};
  RETURN_IF_ERROR(RemoveTemps(env, p));  // left by an earlier interrupted compaction
  ASSIGN_OR_RETURN(auto idx, OpenIndexForArchive(env, archive_path, index_path));
  ASSIGN_OR_RETURN(std::vector<Entry> entries, idx->AllEntries());
  ASSIGN_OR_RETURN(std::vector<RunInfo> runs, idx->Runs());
  ASSIGN_OR_RETURN(int64_t last, idx->LastCompaction());
  ASSIGN_OR_RETURN(internal::LiveSet live,
                   internal::ComputeLive(env, archive_path, entries, runs, policy));
  CompactResult r;
  ASSIGN_OR_RETURN(r.bytes_before, internal::ArchiveSize(env, archive_path));
  r.bytes_after = r.bytes_before;
  r.live_share = live.all_bytes == 0
                     ? 1.0
                     : static_cast<double>(live.live_bytes) / static_cast<double>(live.all_bytes);
  r.threshold = Threshold(policy, last, runs);
  if (entries.empty() || (!policy.force && r.live_share >= r.threshold)) return r;
  Status st = BuildAndSwap(env, p, std::move(idx), entries, live, policy.now);
  if (!st.ok()) {
    (void)RemoveTemps(env, p);
    return st;
  }
  r.compacted = true;
  ASSIGN_OR_RETURN(r.bytes_after, internal::ArchiveSize(env, archive_path));
  return r;
}

}  // namespace cyrsync::snapshot
