// FILE_PUT / FILE_REMOVE: server-wide files (mailboxes.db, seen, subscriptions, quota, sieve).
#include "replica/session.h"

namespace cyrsync::replica {
namespace {

using protocol::Frame;
using protocol::Transport;

// Symlinks from the source (sieve's defaultbc) may only name a sibling file.
Status CheckSymlinkTarget(const std::string& target) {
  if (target.empty() || target == "." || target == ".." ||
      target.find('/') != std::string::npos || target.find('\0') != std::string::npos) {
    return InvalidArgumentError("symlink target refused: " + target);
  }
  return Status::Ok();
}

Status StageSymlink(Store& s, const protocol::FilePut& put, const std::string& staged) {
  RETURN_IF_ERROR(CheckSymlinkTarget(put.target));
  RETURN_IF_ERROR(s.env()->Symlink(put.target, staged));
  if (s.options().owner.set) {
    RETURN_IF_ERROR(s.env()->Chown(staged, s.options().owner.uid, s.options().owner.gid));
  }
  return Status::Ok();
}

Status StageFile(Transport& t, Store& s, const protocol::FilePut& put, const std::string& staged) {
  ASSIGN_OR_RETURN(auto wf, s.env()->NewWritable(staged, 0600));
  FileSink sink(std::move(wf), FileSink::Hash::kNone);
  auto basis = s.OpenInstalled(put.path);
  ASSIGN_OR_RETURN(uint64_t got, protocol::ReceiveBody(t, sink, s.options().max_file_size,
                                                       basis.file.get(), basis.size));
  if (got != put.size) {
    return CorruptionError("file " + put.path.rel + " declared " + std::to_string(put.size) +
                           " bytes, sent " + std::to_string(got));
  }
  RETURN_IF_ERROR(sink.Finish());
  if (s.options().owner.set) {
    RETURN_IF_ERROR(s.env()->Chown(staged, s.options().owner.uid, s.options().owner.gid));
  }
  return s.env()->SetMtime(staged, put.source.mtime_ns);
}

}  // namespace

Status HandleFilePut(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(auto put, protocol::DecodeFilePut(f.payload));
  RETURN_IF_ERROR(s.CheckCyrusStopped());
  ASSIGN_OR_RETURN(std::string final_abs, s.Resolve(put.path));
  ASSIGN_OR_RETURN(std::string staged, s.NewStagePath(put.path));
  Status staged_ok = put.kind == protocol::EntryKind::kSymlink ? StageSymlink(s, put, staged)
                                                                 : StageFile(t, s, put, staged);
  if (!staged_ok.ok()) {
    (void)s.env()->Remove(staged);  // no temp file outlives a refused or broken transfer
    return staged_ok;
  }
  RETURN_IF_ERROR(s.EnsureDir(Dirname(final_abs)));
  RETURN_IF_ERROR(s.InstallTogether({{staged, final_abs}}));
  StoredEntry e;
  e.entry.path = put.path;
  e.entry.owner = put.owner;
  e.entry.kind = put.kind;
  e.entry.source = put.source;
  e.entry.unsettled = put.unsettled;
  ASSIGN_OR_RETURN(e.local, s.LocalStat(final_abs));
  RETURN_IF_ERROR(s.manifest().Apply({e}, {}, std::nullopt));
  return t.Send(protocol::kOk, "");
}

Status HandleFileRemove(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(auto path, protocol::DecodePath(f.payload));
  RETURN_IF_ERROR(s.CheckCyrusStopped());
  ASSIGN_OR_RETURN(std::string abs, s.Resolve(path));
  Status st = s.env()->Remove(abs);
  if (!st.ok() && st.code() != Code::kNotFound) return st;
  RETURN_IF_ERROR(s.manifest().Remove({path}));
  return t.Send(protocol::kOk, "");
}

}  // namespace cyrsync::replica
