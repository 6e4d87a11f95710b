#include "snapshot/compact_live.h"

#include <map>

#include "cyrus/index.h"
#include "snapshot/guid_map.h"
#include "snapshot/run_marker.h"
#include "snapshot/tar.h"

namespace cyrsync::snapshot::internal {
namespace {

constexpr std::string_view kImap = "imap/";
constexpr std::string_view kFolders = "folders/";
constexpr std::string_view kFiles = "files/";
constexpr std::string_view kRuns = "runs/";

uint64_t Footprint(const Entry& e) {
  return kTarBlockSize + (e.loc.size + kTarBlockSize - 1) / kTarBlockSize * kTarBlockSize;
}

bool IsTombstone(const Entry& e) {
  return e.kind == EntryKind::kSymlink && e.link_target == kTombstoneTarget;
}

// "folders/<uniqueid>/<file>" -> {uniqueid, file}; empty uniqueid for other names.
std::pair<std::string, std::string> SplitFolderName(std::string_view name) {
  if (!name.starts_with(kFolders)) return {};
  name.remove_prefix(kFolders.size());
  size_t slash = name.find('/');
  if (slash == std::string_view::npos) return {};
  return {std::string(name.substr(0, slash)), std::string(name.substr(slash + 1))};
}

class LiveBuilder {
 public:
  LiveBuilder(Env* env, const std::string& path, const std::vector<Entry>& entries,
              const std::vector<RunInfo>& runs, const CompactPolicy& policy)
      : env_(env), path_(path), entries_(entries), policy_(policy) {
    for (const RunInfo& r : runs) started_[r.run_id] = r.started;
    // Archive order is run order, so the last version of a name in the list is its newest.
    for (size_t i = 0; i < entries.size(); ++i) versions_[entries[i].name].push_back(i);
  }
  Result<LiveSet> Build();

 private:
  void Keep(size_t i);
  bool Retained(const Entry& tombstone) const;
  void KeepLink(const std::vector<size_t>& versions);
  void KeepFolders();
  Status CollectGuids(const Entry& index_entry);
  Status CollectMapped(const Entry& map_entry);
  Status KeepFiles();

  Env* env_;
  const std::string& path_;
  const std::vector<Entry>& entries_;
  const CompactPolicy& policy_;
  std::map<int64_t, int64_t> started_;                   // run id -> start time
  std::map<std::string, std::vector<size_t>> versions_;  // name -> entries, oldest first
  std::set<std::string> folders_;                        // uniqueids some kept link names
  std::vector<size_t> folder_indexes_;                   // kept cyrus.index / cyrus.expunge
  std::vector<size_t> folder_maps_;                      // kept guid maps
  std::set<std::string> guids_;                          // SHA-1s of the bodies kept
  LiveSet live_;
};

void LiveBuilder::Keep(size_t i) {
  if (live_.keep.insert(KeyOf(entries_[i])).second) live_.live_bytes += Footprint(entries_[i]);
}

bool LiveBuilder::Retained(const Entry& tombstone) const {
  auto it = started_.find(tombstone.run_id);
  const int64_t recorded = it == started_.end() ? policy_.now : it->second;
  return policy_.now - recorded < policy_.retention_seconds;
}

// The newest version of a link; for a retained tombstone also the link it replaced, so the
// deleted folder can still be found (and restored) until retention ends.
void LiveBuilder::KeepLink(const std::vector<size_t>& versions) {
  const Entry& newest = entries_[versions.back()];
  if (!IsTombstone(newest)) {
    Keep(versions.back());
    if (newest.kind == EntryKind::kSymlink) folders_.insert(newest.link_target);
    return;
  }
  if (!Retained(newest)) return;
  Keep(versions.back());
  for (size_t k = versions.size() - 1; k-- > 0;) {
    const Entry& older = entries_[versions[k]];
    if (older.kind == EntryKind::kSymlink && !IsTombstone(older)) {
      Keep(versions[k]);
      folders_.insert(older.link_target);
      return;
    }
  }
}

void LiveBuilder::KeepFolders() {
  for (const auto& [name, versions] : versions_) {
    auto [uid, file] = SplitFolderName(name);
    if (uid.empty() || folders_.count(uid) == 0) continue;
    Keep(versions.back());
    if (file == "cyrus.index" || file == "cyrus.expunge")
      folder_indexes_.push_back(versions.back());
    if (file == kGuidMapFile) folder_maps_.push_back(versions.back());
  }
}

Status LiveBuilder::CollectGuids(const Entry& e) {
  ASSIGN_OR_RETURN(std::string bytes, ReadEntry(env_, path_, e));
  auto index = cyrus::ParseIndex(bytes, e.name);
  if (!index.ok()) return index.error().WithContext("compact " + path_);
  for (const cyrus::IndexRecord& r : index->records) {
    // A record without GUID is kept through its folder's guid map.
    if (r.HasFile() && HasGuid(r)) guids_.insert(r.GuidHex());
  }
  return Status::Ok();
}

// The map kept is the folder's newest, written with its newest cyrus.index.
Status LiveBuilder::CollectMapped(const Entry& e) {
  ASSIGN_OR_RETURN(std::string text, ReadEntry(env_, path_, e));
  auto map = ParseGuidMap(text, path_ + ": " + e.name);
  if (!map.ok()) return map.error().WithContext("compact " + path_);
  for (const auto& [uid, sha1] : map->sha1) guids_.insert(sha1);
  return Status::Ok();
}

Status LiveBuilder::KeepFiles() {
  for (size_t i : folder_indexes_) RETURN_IF_ERROR(CollectGuids(entries_[i]));
  for (size_t i : folder_maps_) RETURN_IF_ERROR(CollectMapped(entries_[i]));
  for (const auto& [name, versions] : versions_) {
    if (!name.starts_with(kFiles)) continue;
    if (guids_.count(name.substr(kFiles.size())) > 0) Keep(versions.back());
  }
  return Status::Ok();
}

Result<LiveSet> LiveBuilder::Build() {
  for (const Entry& e : entries_) live_.all_bytes += Footprint(e);
  for (const auto& [name, versions] : versions_) {
    if (name.starts_with(kRuns)) {
      for (size_t i : versions) Keep(i);  // every run marker (names are unique per run anyway)
    } else if (name.starts_with(kImap)) {
      KeepLink(versions);
    } else if (!name.starts_with(kFolders) && !name.starts_with(kFiles)) {
      Keep(versions.back());  // user/, sieve/, and names this version does not know: latest
    }
  }
  KeepFolders();
  RETURN_IF_ERROR(KeepFiles());
  return std::move(live_);
}

}  // namespace

Result<LiveSet> ComputeLive(Env* env, const std::string& archive_path,
                            const std::vector<Entry>& entries, const std::vector<RunInfo>& runs,
                            const CompactPolicy& policy) {
  LiveBuilder b(env, archive_path, entries, runs, policy);
  return b.Build();
}

}  // namespace cyrsync::snapshot::internal
