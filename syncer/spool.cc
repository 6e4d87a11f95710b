#include "syncer/spool.h"

namespace cyrsync::syncer {

protocol::WirePath ToWire(const cyrus::RootedPath& p) { return {p.root, p.rel}; }

protocol::StatTuple ToTuple(const FileStat& st) {
  return {st.size, st.mtime_ns, st.ctime_ns, st.ino};
}

void ReplicaView::Add(protocol::ManifestEntry e) {
  if (e.kind == protocol::EntryKind::kMeta && !e.folder_key.empty()) {
    folder_owner.emplace(std::move(e.folder_key), e.owner);
  }
  e.folder_key.clear();
  protocol::WirePath path = std::move(e.path);
  e.path = {};
  by_path.insert_or_assign(std::move(path), std::move(e));
}

namespace {

// kChanged unless the file's stat tuple equals the settled tuple the replica installed.
// Sets *absent when the source file does not exist.
bool Differs(Env* env, const cyrus::ImapdConf& conf, const cyrus::RootedPath& p,
             const ReplicaView& view, bool* absent) {
  *absent = false;
  auto abs = cyrus::Resolve(conf, p);
  if (!abs.ok()) return true;
  auto st = env->Stat(*abs);
  auto it = view.by_path.find(ToWire(p));
  if (!st.ok()) {
    *absent = true;
    return it != view.by_path.end();
  }
  if (it == view.by_path.end() || it->second.unsettled) return true;
  return !(it->second.source == ToTuple(*st));
}

}  // namespace

FolderState CheckFolder(Env* env, const cyrus::ImapdConf& conf, const Folder& f,
                        const ReplicaView& view) {
  bool absent = false;
  bool changed = Differs(env, conf, f.index, view, &absent);
  if (absent) return FolderState::kMissingOnSource;
  bool header_absent = false;
  changed = Differs(env, conf, f.header, view, &header_absent) || changed;
  auto idx = view.by_path.find(ToWire(f.index));
  if (idx != view.by_path.end() && idx->second.index_minor > 0 && idx->second.index_minor < 12) {
    bool exp_absent = false;
    changed = Differs(env, conf, f.expunge, view, &exp_absent) || changed;
  }
  return changed ? FolderState::kChanged : FolderState::kUnchanged;
}

}  // namespace cyrsync::syncer
