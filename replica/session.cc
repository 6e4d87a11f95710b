#include "replica/session.h"

#include <map>

#include "cyrus/paths.h"
#include "protocol/rsync_codec.h"

namespace cyrsync::replica {
namespace {

using protocol::Frame;
using protocol::Transport;
using Handler = Status (*)(Transport&, Store&, const Frame&);

const std::map<uint16_t, Handler>& Handlers() {
  static const std::map<uint16_t, Handler> kTable = {
      {protocol::kHello, &HandleHello},
      {protocol::kGetManifest, &HandleGetManifest},
      {protocol::kFolderBegin, &HandleFolderBegin},
      {protocol::kFolderDelete, &HandleFolderDelete},
      {protocol::kFilePut, &HandleFilePut},
      {protocol::kFileRemove, &HandleFileRemove},
      {protocol::kGetSignature, &HandleGetSignature},
  };
  return kTable;
}

constexpr size_t kManifestChunkEntries = 2000;

}  // namespace

Status FileSink::Write(std::string_view chunk) {
  hash_.Update(chunk);
  return f_->Append(chunk);
}
Status FileSink::Finish() {
  RETURN_IF_ERROR(f_->Sync());
  return f_->Close();
}
std::string FileSink::Sha1HexDigest() {
  auto d = hash_.Finish();
  return HexEncode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

Status ServeSession(Transport& t, Store& store) {
  bool greeted = false;
  while (true) {
    auto frame = t.Receive();
    if (!frame.ok()) {
      return frame.error().code() == Code::kUnavailable ? Status::Ok() : frame.error();
    }
    auto it = Handlers().find(frame->type);
    Status st;
    if (it == Handlers().end()) {
      st = CorruptionError("protocol error: unexpected message type " +
                           std::to_string(frame->type));
    } else if (!greeted && frame->type != protocol::kHello) {
      st = CorruptionError("protocol error: HELLO must come first");
    } else {
      st = it->second(t, store, *frame);
      greeted = true;
    }
    if (!st.ok()) {
      store.log().warn("session ended by error error=\"{}\"", st.ToString());
      protocol::SendError(t, st);
      t.Close();
      return st;
    }
  }
}

Status HandleHello(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(auto hello, protocol::DecodeHello(f.payload));
  if (hello.version != protocol::kProtocolVersion) {
    return FailedPreconditionError("unsupported protocol version " +
                                   std::to_string(hello.version));
  }
  if (hello.mode == "sync") RETURN_IF_ERROR(s.CheckCyrusStopped());
  protocol::HelloOk ok;
  ok.instance_id = s.instance_id();
  ok.cyrus_running = s.CyrusRunning();
  return t.Send(protocol::kHelloOk, protocol::Encode(ok));
}

// Sends every manifest entry whose installed copy is still on disk unchanged; drops the others,
// so a wiped, replaced or restored replica is re-synced instead of trusted.
Status HandleGetManifest(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(std::string owner, protocol::DecodeString(f.payload));
  std::vector<StoredEntry> all;
  RETURN_IF_ERROR(s.manifest().ForEach(owner, [&](const StoredEntry& e) { all.push_back(e); }));
  std::vector<protocol::WirePath> stale;
  std::vector<protocol::ManifestEntry> chunk;
  uint64_t sent = 0;
  for (const auto& e : all) {
    if (!s.StillInstalled(e)) {
      stale.push_back(e.entry.path);
      continue;
    }
    chunk.push_back(e.entry);
    if (chunk.size() == kManifestChunkEntries) {
      RETURN_IF_ERROR(t.Send(protocol::kManifestChunk, protocol::EncodeManifestChunk(chunk)));
      sent += chunk.size();
      chunk.clear();
    }
  }
  if (!chunk.empty()) {
    RETURN_IF_ERROR(t.Send(protocol::kManifestChunk, protocol::EncodeManifestChunk(chunk)));
    sent += chunk.size();
  }
  if (!stale.empty()) {
    s.log().warn("manifest entries no longer match the disk dropped={}", stale.size());
    RETURN_IF_ERROR(s.manifest().Remove(stale));
  }
  return t.Send(protocol::kManifestEnd, protocol::EncodeU64(sent));
}

// Signature of the installed copy of a path, as a body; an empty body when there is no trusted
// copy (the sender then sends the whole file).
Status HandleGetSignature(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(auto path, protocol::DecodePath(f.payload));
  ASSIGN_OR_RETURN(std::string abs, s.Resolve(path));
  (void)abs;
  auto basis = s.OpenInstalled(path);
  if (!basis.file) return protocol::SendBody(t, "");
  ASSIGN_OR_RETURN(std::string sig, protocol::FileSignature(*basis.file));
  return protocol::SendBody(t, sig);
}

}  // namespace cyrsync::replica
