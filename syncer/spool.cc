#include "syncer/spool.h"

#include <algorithm>
#include <tuple>

#include "common/parallel.h"

namespace cyrsync::syncer {

protocol::WirePath ToWire(const cyrus::RootedPath& p) { return {p.root, p.rel}; }

protocol::StatTuple ToTuple(const FileStat& st) {
  return {st.size, st.mtime_ns, st.ctime_ns, st.ino};
}

namespace {

std::optional<protocol::StatTuple> StatSource(Env* env, const cyrus::ImapdConf& conf,
                                              const cyrus::RootedPath& p) {
  auto abs = cyrus::Resolve(conf, p);
  if (!abs.ok()) return std::nullopt;
  auto st = env->Stat(*abs);
  if (!st.ok()) return std::nullopt;
  return ToTuple(*st);
}

// kChanged unless the stat tuple equals the settled tuple the replica installed. An absent file
// is a change only when the replica has it.
bool Differs(const protocol::WirePath& path, const std::optional<protocol::StatTuple>& st,
             const ReplicaView& view) {
  const ReplicaView::Entry* e = view.Find(path);
  if (!st) return e != nullptr;
  if (e == nullptr || e->unsettled) return true;
  return !(e->source == *st);
}

}  // namespace

SourceStats StatFolder(Env* env, const cyrus::ImapdConf& conf, const cyrus::RootedPath& index_p,
                       const cyrus::RootedPath& header_p) {
  SourceStats s;
  s.index_path = ToWire(index_p);
  s.header_path = ToWire(header_p);
  auto index = cyrus::Resolve(conf, index_p);
  auto header = cyrus::Resolve(conf, header_p);
  if (index.ok() && header.ok() && Dirname(*index) == Dirname(*header)) {
    // The usual layout: both in the folder's meta directory, one path walk for the two.
    const std::string names[] = {Basename(*index), Basename(*header)};
    auto st = env->StatInDir(Dirname(*index), names);
    if (st[0].ok()) s.index = ToTuple(*st[0]);
    if (s.index && st[1].ok()) s.header = ToTuple(*st[1]);
    return s;
  }
  s.index = StatSource(env, conf, index_p);
  if (s.index) s.header = StatSource(env, conf, header_p);
  return s;
}

namespace {

std::string_view ParentOf(std::string_view rel) {
  size_t slash = rel.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : rel.substr(0, slash);
}

cyrus::RootedPath FromWire(const protocol::WirePath& p) { return {p.root, p.rel}; }

// Folders per group at most: a by-name spool without hashing keeps every INBOX in one
// directory, and one group per thread must still leave work for the others (a cold cache
// makes each stat a disk read).
constexpr size_t kMaxGroup = 16;

// The folders (indexes into `folders`) whose metadata sits in <root>/<parent>/<dir>/.
struct ParentGroup {
  std::string_view root, parent;
  std::vector<size_t> members;
};

std::vector<ParentGroup> GroupByParent(std::span<SourceStats* const> folders,
                                       std::vector<size_t>* alone) {
  std::vector<std::tuple<std::string_view, std::string_view, size_t>> keyed;
  keyed.reserve(folders.size());
  for (size_t i = 0; i < folders.size(); ++i) {
    const auto& ix = folders[i]->index_path;
    const auto& hx = folders[i]->header_path;
    std::string_view meta = ParentOf(ix.rel);
    if (ix.root != hx.root || ParentOf(hx.rel) != meta || meta.find('/') == meta.npos) {
      alone->push_back(i);
      continue;
    }
    keyed.emplace_back(ix.root, ParentOf(meta), i);
  }
  std::sort(keyed.begin(), keyed.end());
  std::vector<ParentGroup> groups;
  for (const auto& [root, parent, i] : keyed) {
    if (groups.empty() || groups.back().root != root || groups.back().parent != parent ||
        groups.back().members.size() == kMaxGroup) {
      groups.push_back({root, parent, {}});
    }
    groups.back().members.push_back(i);
  }
  return groups;
}

void StatGroup(Env* env, const cyrus::ImapdConf& conf, const ParentGroup& g,
               std::span<SourceStats* const> folders) {
  auto root = conf.RootDir(g.root);
  if (!root.ok()) return;  // nothing found: every folder of the group stays absent
  const size_t skip = g.parent.size() + 1;
  std::vector<std::string> names;
  names.reserve(2 * g.members.size());
  for (size_t i : g.members) {
    names.push_back(folders[i]->index_path.rel.substr(skip));
    names.push_back(folders[i]->header_path.rel.substr(skip));
  }
  auto st = env->StatInDir(JoinPath(*root, std::string(g.parent)), names);
  for (size_t k = 0; k < g.members.size(); ++k) {
    SourceStats& s = *folders[g.members[k]];
    s.index = st[2 * k].ok() ? std::optional(ToTuple(*st[2 * k])) : std::nullopt;
    s.header = s.index && st[2 * k + 1].ok() ? std::optional(ToTuple(*st[2 * k + 1]))
                                             : std::nullopt;
  }
}

}  // namespace

void StatFolders(Env* env, const cyrus::ImapdConf& conf, std::span<SourceStats* const> folders,
                 int threads) {
  std::vector<size_t> alone;
  const std::vector<ParentGroup> groups = GroupByParent(folders, &alone);
  ParallelFor(groups.size() + alone.size(), threads, [&](size_t g) {
    if (g < groups.size()) return StatGroup(env, conf, groups[g], folders);
    SourceStats& s = *folders[alone[g - groups.size()]];
    s = StatFolder(env, conf, FromWire(s.index_path), FromWire(s.header_path));
  });
}

SourceStats StatFolder(Env* env, const cyrus::ImapdConf& conf, const Folder& f) {
  return StatFolder(env, conf, f.index, f.header);
}

FolderState CompareFolder(Env* env, const cyrus::ImapdConf& conf, const SourceStats& st,
                          const std::function<cyrus::RootedPath()>& expunge_path,
                          const ReplicaView& view) {
  if (!st.index) return FolderState::kMissingOnSource;
  bool changed = Differs(st.index_path, st.index, view);
  changed = Differs(st.header_path, st.header, view) || changed;
  const ReplicaView::Entry* idx = view.Find(st.index_path);
  if (idx != nullptr && idx->index_minor > 0 && idx->index_minor < 12) {
    cyrus::RootedPath expunge = expunge_path();
    changed = Differs(ToWire(expunge), StatSource(env, conf, expunge), view) || changed;
  }
  return changed ? FolderState::kChanged : FolderState::kUnchanged;
}

FolderState CheckFolder(Env* env, const cyrus::ImapdConf& conf, const Folder& f,
                        const ReplicaView& view) {
  return CompareFolder(env, conf, StatFolder(env, conf, f), [&] { return f.expunge; }, view);
}

}  // namespace cyrsync::syncer
