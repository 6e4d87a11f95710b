#include "syncer/spool.h"

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
