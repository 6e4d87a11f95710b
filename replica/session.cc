#include "replica/session.h"

#include <future>
#include <map>
#include <optional>
#include <set>

#include "cyrus/paths.h"
#include "protocol/rsync_codec.h"

namespace cyrsync::replica {
namespace {

using protocol::Frame;
using protocol::Transport;
using Handler = Status (*)(Transport&, Store&, const Frame&);
// A request that queues folder installs or reports on them.
using InstallHandler = Status (*)(Transport&, Store&, const std::shared_ptr<PendingInstalls>&,
                                  const Frame&);

enum class Mode { kNone, kSync, kRead, kRestore };

struct Route {
  Handler handler;
  InstallHandler install_handler;  // instead of handler
  Mode mode;  // the session mode the request belongs to
};

struct SessionState {
  Mode mode = Mode::kNone;
  std::shared_ptr<PendingInstalls> pending = std::make_shared<PendingInstalls>();
};

const std::map<uint16_t, Route>& Routes() {
  static const std::map<uint16_t, Route> kTable = {
      {protocol::kGetManifest, {&HandleGetManifest, nullptr, Mode::kSync}},
      {protocol::kFolderBegin, {nullptr, &HandleFolderBegin, Mode::kSync}},
      {protocol::kFolderDelete, {&HandleFolderDelete, nullptr, Mode::kSync}},
      {protocol::kFolderFlush, {nullptr, &HandleFolderFlush, Mode::kSync}},
      {protocol::kFolderCheck, {&HandleFolderCheck, nullptr, Mode::kSync}},
      {protocol::kFilePut, {&HandleFilePut, nullptr, Mode::kSync}},
      {protocol::kFileRemove, {&HandleFileRemove, nullptr, Mode::kSync}},
      {protocol::kGetSignature, {&HandleGetSignature, nullptr, Mode::kSync}},
      {protocol::kPassDone, {&HandlePassDone, nullptr, Mode::kSync}},
      {protocol::kUserState, {&HandleUserState, nullptr, Mode::kRead}},
      {protocol::kFolderFetch, {&HandleFolderFetch, nullptr, Mode::kRead}},
      {protocol::kMessageFetch, {&HandleMessageFetch, nullptr, Mode::kRead}},
      {protocol::kMessagesFetch, {&HandleMessagesFetch, nullptr, Mode::kRead}},
      {protocol::kFileFetch, {&HandleFileFetch, nullptr, Mode::kRead}},
      {protocol::kRestoreBegin, {&HandleRestoreBegin, nullptr, Mode::kRestore}},
  };
  return kTable;
}

// HELLO opens a session in one mode; requests of the other mode are protocol errors.
Result<Mode> Greet(Transport& t, Store& s, const Frame& f) {
  if (f.type != protocol::kHello) return CorruptionError("protocol error: HELLO must come first");
  ASSIGN_OR_RETURN(auto hello, protocol::DecodeHello(f.payload));
  if (hello.version != protocol::kProtocolVersion) {
    return FailedPreconditionError("unsupported protocol version " +
                                   std::to_string(hello.version));
  }
  Mode mode;
  if (hello.mode == "sync") {
    if (s.options().read_only) {
      return FailedPreconditionError("this daemon serves reads only (it runs beside a live Cyrus)");
    }
    RETURN_IF_ERROR(s.CheckCyrusStopped());
    mode = Mode::kSync;
  } else if (hello.mode == "read") {
    mode = Mode::kRead;
  } else if (hello.mode == "restore") {
    if (!s.options().allow_restore) {
      return FailedPreconditionError("this daemon does not accept restores (start it with "
                                     "--allow-restore)");
    }
    mode = Mode::kRestore;
  } else {
    return InvalidArgumentError("unknown session mode " + hello.mode);
  }
  protocol::HelloOk ok;
  ok.instance_id = s.instance_id();
  ok.cyrus_running = s.CyrusRunning();
  RETURN_IF_ERROR(t.Send(protocol::kHelloOk, protocol::Encode(ok)));
  return mode;
}

Status Dispatch(Transport& t, Store& s, const Frame& f, SessionState* session) {
  if (session->mode == Mode::kNone) {
    ASSIGN_OR_RETURN(session->mode, Greet(t, s, f));
    return Status::Ok();
  }
  auto it = Routes().find(f.type);
  if (it == Routes().end() || it->second.mode != session->mode) {
    return CorruptionError("protocol error: unexpected message type " + std::to_string(f.type));
  }
  if (it->second.install_handler) return it->second.install_handler(t, s, session->pending, f);
  return it->second.handler(t, s, f);
}

constexpr size_t kManifestChunkEntries = 2000;

}  // namespace

Status FileSink::Write(std::string_view chunk) {
  if (hashing_) hash_.Update(chunk);
  return f_->Append(chunk);
}
Status FileSink::Finish() {
  return f_->Close();  // durable through Store::InstallTogether's syncfs
}
std::string FileSink::Sha1HexDigest() {
  return HexEncode(hash_.Finish());
}

void PendingInstalls::Add() {
  std::lock_guard lock(mu_);
  ++pending_;
}

void PendingInstalls::Done(const std::string& intname, const Status& st) {
  std::lock_guard lock(mu_);
  if (!st.ok()) failed_.push_back({intname, st.ToString()});
  if (--pending_ == 0) idle_.notify_all();
}

std::vector<protocol::FolderFlushResult::Failure> PendingInstalls::Wait() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return pending_ == 0; });
  return std::exchange(failed_, {});
}

// A session ends only after the installs it queued: "connection closed" in the log then means
// that nothing this peer sent is still being written.
Status ServeSession(Transport& t, Store& store) {
  SessionState session;
  while (true) {
    auto frame = t.Receive();
    if (!frame.ok()) {
      session.pending->Wait();
      return frame.error().code() == Code::kUnavailable ? Status::Ok() : frame.error();
    }
    Status st = Dispatch(t, store, *frame, &session);
    if (!st.ok()) {
      store.log().warn("session ended by error error=\"{}\"", st.ToString());
      protocol::SendError(t, st);
      t.Close();
      session.pending->Wait();
      return st;
    }
  }
}

Status HandleFolderFlush(Transport& t, Store& s, const std::shared_ptr<PendingInstalls>& pending,
                         const Frame& f) {
  (void)s;
  if (!f.payload.empty()) return CorruptionError("protocol error: FOLDER_FLUSH takes no payload");
  return t.Send(protocol::kFolderFlushResult, protocol::Encode(protocol::FolderFlushResult{
                                                  pending->Wait()}));
}

// One page of the manifest, read in place: entries in quiet directories are encoded at once,
// the others are copied out to be statted.
struct ManifestPage {
  protocol::ManifestChunkWriter chunk;
  std::vector<StoredEntry> unsure;
  std::optional<protocol::WirePath> last;  // where the next page starts; none: the end
};

Result<ManifestPage> ReadManifestPage(Store& s, const std::string& owner,
                                      const std::optional<protocol::WirePath>& after) {
  ManifestPage page;
  Store::QuietDirs quiet(s);
  std::string last_root, last_rel;
  ASSIGN_OR_RETURN(size_t n, s.manifest().VisitPage(
                                 owner, after ? &*after : nullptr, kManifestChunkEntries,
                                 [&](const StoredEntryView& e) {
                                   if (quiet(e.entry.root, e.entry.rel)) {
                                     page.chunk.Add(e.entry);
                                   } else {
                                     page.unsure.push_back(e.Copy());
                                   }
                                   last_root.assign(e.entry.root);
                                   last_rel.assign(e.entry.rel);
                                 }));
  if (n > 0) page.last = protocol::WirePath{std::move(last_root), std::move(last_rel)};
  return page;
}

// Sends every manifest entry whose installed copy is still on disk unchanged; drops the others
// (and every entry of a folder one of them belongs to), so a wiped, replaced or restored replica
// is re-synced instead of trusted. An entry in a directory the change watch vouches for is sent
// without a stat; the others are statted, on several threads (a cold cache makes each a disk
// read). Read a page at a time (memory stays one page at any manifest size, and the manifest is
// not held while a page is sent).
Status HandleGetManifest(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(std::string owner, protocol::DecodeString(f.payload));
  std::vector<protocol::WirePath> stale;
  std::set<std::string> stale_folders;
  uint64_t sent = 0;
  // A new pass starts from what is installed: folders a previous pass queued are in first.
  s.WaitInstalled();
  s.PollChanges();
  s.manifest().WillNeed();
  // The next page is read while this one is checked and sent: cold, reading the manifest and
  // statting the files it names are both waits for the disk, and they overlap. (On an early
  // return, the destructor of the std::async future waits for the read in flight.)
  auto read_after = [&s, &owner](std::optional<protocol::WirePath> after) {
    return std::async(std::launch::async, [&s, &owner, after = std::move(after)] {
      return ReadManifestPage(s, owner, after);
    });
  };
  auto next = read_after(std::nullopt);
  while (true) {
    ASSIGN_OR_RETURN(ManifestPage page, next.get());
    if (!page.last) break;
    next = read_after(page.last);
    const std::vector<char> installed = s.StillInstalled(page.unsure, s.options().stat_threads);
    for (size_t i = 0; i < page.unsure.size(); ++i) {
      const StoredEntry& e = page.unsure[i];
      if (installed[i]) {
        page.chunk.Add(e.entry);
        continue;
      }
      if (e.entry.kind == protocol::EntryKind::kMeta && !e.entry.folder_key.empty()) {
        stale_folders.insert(e.entry.folder_key);
      }
      stale.push_back(e.entry.path);
    }
    if (page.chunk.count() == 0) continue;
    sent += page.chunk.count();
    RETURN_IF_ERROR(t.Send(protocol::kManifestChunk, page.chunk.Finish()));
  }
  if (!stale.empty()) {
    s.log().warn("manifest entries no longer match the disk dropped={} folders={}", stale.size(),
                 stale_folders.size());
    RETURN_IF_ERROR(s.manifest().Remove(stale));
  }
  // A folder with one file changed behind the replica's back is copied whole again: the syncer
  // compares only cyrus.index and cyrus.header, so a damaged cyrus.cache alone would otherwise
  // never be noticed. Entries already sent this pass go next pass.
  for (const auto& key : stale_folders) RETURN_IF_ERROR(s.manifest().RemoveFolderEntries(key));
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

Status HandlePassDone(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(auto done, protocol::DecodePassDone(f.payload));
  if (done.users.empty()) done.users.push_back("*");
  for (const auto& u : done.users) {
    RETURN_IF_ERROR(s.manifest().SetMeta("synced:" + u, std::to_string(done.time)));
  }
  s.manifest().Checkpoint();
  return t.Send(protocol::kOk, "");
}

}  // namespace cyrsync::replica
