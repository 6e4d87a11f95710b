// Verify: every member inflates, every files/<sha1> hashes to its name, and the index and the
// archive agree entry for entry (and run for run).
#include <map>
#include <set>

#include "snapshot/archive_internal.h"

namespace cyrsync::snapshot {
namespace {

using Key = std::pair<uint64_t, uint64_t>;  // member_offset, data_offset
constexpr std::string_view kFilesPrefix = "files/";

Key KeyOf(const Entry& e) { return {e.loc.member_offset, e.loc.data_offset}; }

std::string At(uint64_t offset) { return " at offset " + std::to_string(offset); }

// The first field in which the index's copy of an entry differs from the archive's, or "".
std::string FirstDifference(const Entry& a, const Entry& i) {
  if (a.name != i.name) return "name (index \"" + i.name + "\")";
  if (a.kind != i.kind) return "kind";
  if (a.link_target != i.link_target) return "link target";
  if (a.sha1 != i.sha1) return "sha1";
  if (a.mtime != i.mtime) return "mtime";
  if (a.mode != i.mode) return "mode";
  if (a.run_id != i.run_id) return "run";
  if (a.loc.member_length != i.loc.member_length) return "member length";
  if (a.loc.size != i.loc.size) return "size";
  return "";
}

bool SameRun(const RunInfo& a, const RunInfo& b) {
  return a.run_id == b.run_id && a.started == b.started && a.finished == b.finished &&
         a.source == b.source && a.user == b.user;
}

class Verifier {
 public:
  Verifier(Env* env, const std::string& path, IndexDb* index)
      : env_(env), path_(path), index_(index) {}
  Result<VerifyReport> Run();

 private:
  Status LoadIndex();
  Status WalkFrom(ReadableFile* file, uint64_t start, uint64_t limit);
  Status CheckMember(std::vector<internal::ScannedEntry>& member);
  void CheckEntry(const Entry& a);
  void ReportUnmatched();
  Status CheckRuns();
  void Problem(std::string p) { report_.problems.push_back(std::move(p)); }

  Env* env_;
  const std::string& path_;
  IndexDb* index_;
  uint64_t committed_ = 0;
  std::map<Key, Entry> unmatched_;    // index entries not (yet) seen in the archive
  std::set<uint64_t> index_members_;  // member offsets the index knows
  std::set<uint64_t> damaged_;
  internal::RunAssembler assembler_;
  bool runs_checkable_ = true;
  VerifyReport report_;
};

Status Verifier::LoadIndex() {
  ASSIGN_OR_RETURN(committed_, index_->CommittedEnd());
  ASSIGN_OR_RETURN(std::vector<Entry> all, index_->AllEntries());
  for (Entry& e : all) {
    index_members_.insert(e.loc.member_offset);
    unmatched_.emplace(KeyOf(e), std::move(e));
  }
  return Status::Ok();
}

void Verifier::CheckEntry(const Entry& a) {
  ++report_.entries;
  if (a.kind == EntryKind::kFile && a.name.starts_with(kFilesPrefix) &&
      a.name.substr(kFilesPrefix.size()) != a.sha1) {
    Problem("bad sha1: content of " + a.name + " hashes to " + a.sha1 + At(a.loc.member_offset));
  }
  auto it = unmatched_.find(KeyOf(a));
  if (it == unmatched_.end()) {
    Problem("archive entry " + a.name + " is not in the index" + At(a.loc.member_offset));
    return;
  }
  if (std::string diff = FirstDifference(a, it->second); !diff.empty()) {
    Problem("index disagrees with the archive on the " + diff + " of " + a.name +
            At(a.loc.member_offset));
  }
  unmatched_.erase(it);
}

Status Verifier::CheckMember(std::vector<internal::ScannedEntry>& member) {
  for (const internal::ScannedEntry& se : member) CheckEntry(se.entry);
  if (!runs_checkable_) return Status::Ok();
  Status st = assembler_.AddMember(member);
  if (!st.ok()) {
    Problem("run structure: " + st.message());
    runs_checkable_ = false;
  }
  return Status::Ok();
}

// Walks [start, limit); after a damaged member, resumes at the next member the index knows.
Status Verifier::WalkFrom(ReadableFile* file, uint64_t start, uint64_t limit) {
  internal::MemberCollector collector(
      internal::IsMarker, [&](std::vector<internal::ScannedEntry>& m) { return CheckMember(m); });
  while (start < limit) {
    internal::WalkEnd end = internal::WalkArchive(file, start, limit, &collector);
    report_.members += end.members;
    if (end.status.ok()) return Status::Ok();
    if (end.status.code() != Code::kCorruption) return end.status;
    Problem(end.status.message());
    damaged_.insert(end.offset);
    runs_checkable_ = false;
    collector.DropPartialMember();
    auto next = index_members_.upper_bound(end.offset);
    if (next == index_members_.end()) return Status::Ok();
    start = *next;
  }
  return Status::Ok();
}

void Verifier::ReportUnmatched() {
  for (const auto& [key, e] : unmatched_) {
    if (damaged_.count(e.loc.member_offset) > 0) continue;  // its member is reported already
    Problem("index entry " + e.name + " is missing from the archive" + At(e.loc.member_offset));
  }
}

Status Verifier::CheckRuns() {
  if (!runs_checkable_) return Status::Ok();
  if (assembler_.run_open()) Problem("a run without end marker" + At(committed_));
  ASSIGN_OR_RETURN(std::vector<RunInfo> runs, index_->Runs());
  const auto& found = assembler_.runs();
  for (size_t i = 0; i < std::max(runs.size(), found.size()); ++i) {
    if (i < runs.size() && i < found.size() && SameRun(runs[i], found[i].info)) continue;
    const int64_t id = i < runs.size() ? runs[i].run_id : found[i].info.run_id;
    uint64_t at = i < found.size() ? found[i].entries.front().loc.member_offset : committed_;
    Problem("index run " + std::to_string(id) + " disagrees with the archive's markers" + At(at));
  }
  return Status::Ok();
}

Result<VerifyReport> Verifier::Run() {
  RETURN_IF_ERROR(LoadIndex());
  ASSIGN_OR_RETURN(auto file, env_->OpenRead(path_));
  ASSIGN_OR_RETURN(FileStat st, file->Stat());
  if (st.size < committed_) {
    Problem("archive ends before the index's committed end " + std::to_string(committed_) +
            At(st.size));
  }
  // Bytes past the committed end are an uncommitted tail that the next run cuts; not checked.
  RETURN_IF_ERROR(WalkFrom(file.get(), 0, committed_));
  ReportUnmatched();
  RETURN_IF_ERROR(CheckRuns());
  return report_;
}

}  // namespace

Result<VerifyReport> Verify(Env* env, const std::string& archive_path, IndexDb* index) {
  Verifier v(env, archive_path, index);
  return v.Run();
}

}  // namespace cyrsync::snapshot
