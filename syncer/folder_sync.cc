#include "syncer/folder_sync.h"

#include <map>

#include "common/prefetch.h"
#include "cyrus/index.h"

namespace cyrsync::syncer {
namespace {

using Signatures = std::map<protocol::WirePath, std::string>;

using cyrus::OpenMeta;

bool Unsettled(const FolderContext& ctx, const FileStat& st, int64_t now) {
  return st.mtime_ns > now - ctx.racy_window_ns || st.ctime_ns > now - ctx.racy_window_ns;
}

// Fetched before the locks are taken, so no round trip happens while Cyrus writers wait.
Result<Signatures> FolderSignatures(protocol::Transport& t, const FolderContext& ctx,
                                    const Folder& f) {
  Signatures out;
  std::vector<cyrus::RootedPath> paths = {f.header, f.index, f.expunge};
  paths.insert(paths.end(), f.other_meta.begin(), f.other_meta.end());
  for (const auto& p : paths) {
    ASSIGN_OR_RETURN(std::string sig, SignatureIfWorthIt(t, ctx, ToWire(p)));
    if (!sig.empty()) out[ToWire(p)] = std::move(sig);
  }
  return out;
}

Result<uint64_t> SendBodyOrDelta(protocol::Transport& t, ReadableFile& file,
                                 const Signatures& sigs, const protocol::WirePath& path) {
  auto it = sigs.find(path);
  if (it == sigs.end()) return protocol::SendFileBody(t, file);
  return protocol::SendFileDelta(t, file, it->second);
}

// Sends FOLDER_BEGIN and every metadata body while the locks are held.
Status SendMetadata(protocol::Transport& t, const FolderContext& ctx, const Folder& f,
                    bool full, cyrus::FolderReadLock& locks, const Signatures& sigs,
                    bool* unsettled) {
  ASSIGN_OR_RETURN(std::string index_bytes, locks.index->ReadAll());
  ASSIGN_OR_RETURN(auto hdr, cyrus::ParseIndexHeader(index_bytes, locks.index->path()));
  // Validate the whole index before anything leaves: a corrupt source index must not replace
  // the replica's good copy.
  RETURN_IF_ERROR(cyrus::ParseIndex(index_bytes, locks.index->path()).status());
  ASSIGN_OR_RETURN(auto others, cyrus::OpenFolderMeta(ctx.env, *ctx.conf, f, hdr.minor_version));
  int64_t now = ctx.env->NowNanos();
  protocol::FolderBegin fb{f.key, f.owner, f.mb.intname, ToWire(f.data_dir),
                           ToWire(f.archive_dir), full, false, {}};
  *unsettled = Unsettled(ctx, locks.index_st, now);
  for (const auto& m : others) {
    fb.files.push_back({ToWire(m.path), ToTuple(m.st)});
    *unsettled = *unsettled || Unsettled(ctx, m.st, now);
  }
  fb.files.push_back({ToWire(f.index), ToTuple(locks.index_st)});
  fb.unsettled = *unsettled;
  RETURN_IF_ERROR(t.Send(protocol::kFolderBegin, protocol::Encode(fb)));
  for (auto& m : others) {
    RETURN_IF_ERROR(SendBodyOrDelta(t, *m.file, sigs, ToWire(m.path)).status());
  }
  if (sigs.count(ToWire(f.index))) {
    return SendBodyOrDelta(t, *locks.index, sigs, ToWire(f.index)).status();
  }
  return protocol::SendBody(t, index_bytes);
}

// The files are read ahead by a Prefetcher: on a cold spool several reads are in flight
// while the connection carries the previous files.
Status SendMessages(protocol::Transport& t, const FolderContext& ctx, const Folder& f,
                    const std::vector<protocol::NeedItem>& need, FolderResult* r) {
  ASSIGN_OR_RETURN(std::string data_abs, cyrus::Resolve(*ctx.conf, f.data_dir));
  ASSIGN_OR_RETURN(std::string arch_abs, cyrus::Resolve(*ctx.conf, f.archive_dir));
  std::vector<std::string> paths;
  paths.reserve(need.size());
  for (const auto& n : need) {
    paths.push_back(JoinPath(n.archived ? arch_abs : data_abs, std::to_string(n.uid) + "."));
  }
  Prefetcher ahead(ctx.env, std::move(paths));
  for (size_t i = 0; i < need.size(); ++i) {
    const auto& n = need[i];
    Prefetcher::Item item = ahead.Take(i);
    if (item.status.code() == Code::kNotFound) {
      // Expunged and unlinked since the index was read: normal on a live spool.
      ++r->messages_vanished;
      RETURN_IF_ERROR(t.Send(protocol::kMessageMissing, protocol::EncodeU32(n.uid)));
      continue;
    }
    RETURN_IF_ERROR(item.status);
    RETURN_IF_ERROR(t.Send(protocol::kMessagePut, protocol::Encode(protocol::MessagePut{
                                                      n.uid, n.archived, 0})));
    uint64_t bytes = item.data.size();
    if (item.large) {
      ASSIGN_OR_RETURN(bytes, protocol::SendFileBody(t, *item.large));
    } else {
      RETURN_IF_ERROR(protocol::SendBody(t, item.data));
    }
    ++r->messages_sent;
    r->bytes_sent += bytes;
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> FetchSignature(protocol::Transport& t, const protocol::WirePath& path) {
  RETURN_IF_ERROR(t.Send(protocol::kGetSignature, protocol::EncodePath(path)));
  return protocol::ReceiveBodyToString(t, uint64_t{1} << 30);
}

Result<std::string> SignatureIfWorthIt(protocol::Transport& t, const FolderContext& ctx,
                                       const protocol::WirePath& path) {
  if (ctx.view == nullptr) return std::string();
  const ReplicaView::Entry* e = ctx.view->Find(path);
  if (e == nullptr || e->kind == protocol::EntryKind::kSymlink || e->source.size < kDeltaMinSize) {
    return std::string();
  }
  return FetchSignature(t, path);
}

Result<FolderResult> SyncFolder(protocol::Transport& t, const FolderContext& ctx,
                                const Folder& f, bool full, bool check_only) {
  FolderResult r;
  if (check_only) {
    protocol::FolderBegin fb{f.key, f.owner, f.mb.intname, ToWire(f.data_dir),
                             ToWire(f.archive_dir), true, false, {}};
    RETURN_IF_ERROR(t.Send(protocol::kFolderBegin, protocol::Encode(fb)));
  } else {
    ASSIGN_OR_RETURN(Signatures sigs, FolderSignatures(t, ctx, f));
    ASSIGN_OR_RETURN(auto locks, cyrus::LockFolderForRead(ctx.env, *ctx.conf, f, ctx.lock_owner));
    RETURN_IF_ERROR(SendMetadata(t, ctx, f, full, *locks, sigs, &r.unsettled));
  }  // locks released here: message files are immutable once written
  ASSIGN_OR_RETURN(protocol::Frame need_frame, protocol::ReceiveExpect(t, protocol::kFolderNeed));
  ASSIGN_OR_RETURN(auto need, protocol::DecodeNeed(need_frame.payload));
  RETURN_IF_ERROR(SendMessages(t, ctx, f, need, &r));
  RETURN_IF_ERROR(t.Send(protocol::kFolderCommit, ""));
  RETURN_IF_ERROR(protocol::ExpectOk(t));
  return r;
}

}  // namespace cyrsync::syncer
