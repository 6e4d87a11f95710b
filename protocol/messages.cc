#include "protocol/messages.h"

#include "protocol/frame.h"

namespace cyrsync::protocol {
namespace {

constexpr size_t kMaxList = 1 << 20;

void Put(PayloadWriter& w, const WirePath& p) {
  w.PutString(p.root);
  w.PutString(p.rel);
}
void Put(PayloadWriter& w, const StatTuple& s) {
  w.PutU64(s.size);
  w.PutI64(s.mtime_ns);
  w.PutI64(s.ctime_ns);
  w.PutU64(s.ino);
}
Result<WirePath> GetPath(PayloadReader& r) {
  WirePath p;
  ASSIGN_OR_RETURN(p.root, r.String(256));
  ASSIGN_OR_RETURN(p.rel, r.String(4096));
  return p;
}
Result<StatTuple> GetStat(PayloadReader& r) {
  StatTuple s;
  ASSIGN_OR_RETURN(s.size, r.U64());
  ASSIGN_OR_RETURN(s.mtime_ns, r.I64());
  ASSIGN_OR_RETURN(s.ctime_ns, r.I64());
  ASSIGN_OR_RETURN(s.ino, r.U64());
  return s;
}
Result<bool> GetBool(PayloadReader& r) {
  ASSIGN_OR_RETURN(uint8_t v, r.U8());
  if (v > 1) return CorruptionError("boolean field out of range: " + std::to_string(v));
  return v == 1;
}
Result<uint32_t> GetCount(PayloadReader& r) {
  ASSIGN_OR_RETURN(uint32_t n, r.U32());
  if (n > kMaxList) return CorruptionError("list length too large: " + std::to_string(n));
  return n;
}

void Put(PayloadWriter& w, const ManifestEntryView& e) {
  w.PutString(e.root);
  w.PutString(e.rel);
  w.PutString(e.owner);
  w.PutString(e.folder_key);
  w.PutU8(static_cast<uint8_t>(e.kind));
  Put(w, e.source);
  w.PutU8(e.unsettled);
  w.PutU32(e.index_minor);
}
void Put(PayloadWriter& w, const ManifestEntry& e) { Put(w, ViewOf(e)); }
Result<ManifestEntryView> GetEntry(PayloadReader& r) {
  ManifestEntryView e;
  ASSIGN_OR_RETURN(e.root, r.StringView(256));
  ASSIGN_OR_RETURN(e.rel, r.StringView(4096));
  ASSIGN_OR_RETURN(e.owner, r.StringView(1024));
  ASSIGN_OR_RETURN(e.folder_key, r.StringView(1024));
  ASSIGN_OR_RETURN(uint8_t kind, r.U8());
  if (kind > 2) return CorruptionError("manifest entry kind out of range");
  e.kind = static_cast<EntryKind>(kind);
  ASSIGN_OR_RETURN(e.source, GetStat(r));
  ASSIGN_OR_RETURN(e.unsettled, GetBool(r));
  ASSIGN_OR_RETURN(e.index_minor, r.U32());
  return e;
}

void Put(PayloadWriter& w, const StateFile& f) {
  w.PutString(f.name);
  Put(w, f.path);
  w.PutU8(static_cast<uint8_t>(f.kind));
  Put(w, f.stat);
  w.PutString(f.target);
}
Result<StateFile> GetStateFile(PayloadReader& r) {
  StateFile f;
  ASSIGN_OR_RETURN(f.name, r.String(4096));
  ASSIGN_OR_RETURN(f.path, GetPath(r));
  ASSIGN_OR_RETURN(uint8_t kind, r.U8());
  if (kind > 2) return CorruptionError("state file kind out of range");
  f.kind = static_cast<EntryKind>(kind);
  ASSIGN_OR_RETURN(f.stat, GetStat(r));
  ASSIGN_OR_RETURN(f.target, r.String(4096));
  return f;
}
void PutFiles(PayloadWriter& w, const std::vector<StateFile>& files) {
  w.PutU32(static_cast<uint32_t>(files.size()));
  for (const auto& f : files) Put(w, f);
}
Result<std::vector<StateFile>> GetFiles(PayloadReader& r) {
  ASSIGN_OR_RETURN(uint32_t n, GetCount(r));
  std::vector<StateFile> out;
  for (uint32_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(auto f, GetStateFile(r));
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

std::string Encode(const UserState& m) {
  PayloadWriter w;
  w.PutI64(m.synced_at);
  w.PutU32(static_cast<uint32_t>(m.folders.size()));
  for (const auto& f : m.folders) {
    w.PutString(f.folder_key);
    w.PutString(f.intname);
    w.PutString(f.mbtype);
    PutFiles(w, f.files);
  }
  PutFiles(w, m.user_files);
  return w.Take();
}
Result<UserState> DecodeUserState(std::string_view p) {
  PayloadReader r(p);
  UserState m;
  ASSIGN_OR_RETURN(m.synced_at, r.I64());
  ASSIGN_OR_RETURN(uint32_t n, GetCount(r));
  for (uint32_t i = 0; i < n; ++i) {
    FolderState f;
    ASSIGN_OR_RETURN(f.folder_key, r.String(1024));
    ASSIGN_OR_RETURN(f.intname, r.String(4096));
    ASSIGN_OR_RETURN(f.mbtype, r.String(64));
    ASSIGN_OR_RETURN(f.files, GetFiles(r));
    m.folders.push_back(std::move(f));
  }
  ASSIGN_OR_RETURN(m.user_files, GetFiles(r));
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}
std::string Encode(const StateFile& m) {
  PayloadWriter w;
  Put(w, m);
  return w.Take();
}
Result<StateFile> DecodeStateFile(std::string_view p) {
  PayloadReader r(p);
  ASSIGN_OR_RETURN(auto f, GetStateFile(r));
  RETURN_IF_ERROR(r.ExpectEnd());
  return f;
}
std::string Encode(const MessageFetch& m) {
  PayloadWriter w;
  w.PutString(m.folder_key);
  w.PutU32(m.uid);
  w.PutU8(m.archived);
  return w.Take();
}
Result<MessageFetch> DecodeMessageFetch(std::string_view p) {
  PayloadReader r(p);
  MessageFetch m;
  ASSIGN_OR_RETURN(m.folder_key, r.String(1024));
  ASSIGN_OR_RETURN(m.uid, r.U32());
  ASSIGN_OR_RETURN(m.archived, GetBool(r));
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}
std::string Encode(const FolderCheck& m) {
  PayloadWriter w;
  w.PutU32(static_cast<uint32_t>(m.folders.size()));
  for (const auto& f : m.folders) {
    w.PutString(f.folder_key);
    Put(w, f.data_dir);
    Put(w, f.archive_dir);
  }
  return w.Take();
}
Result<FolderCheck> DecodeFolderCheck(std::string_view p) {
  PayloadReader r(p);
  FolderCheck m;
  ASSIGN_OR_RETURN(uint32_t n, r.U32());
  if (n > kMaxFoldersPerCheck) {
    return CorruptionError("FOLDER_CHECK of " + std::to_string(n) + " folders exceeds " +
                           std::to_string(kMaxFoldersPerCheck));
  }
  for (uint32_t i = 0; i < n; ++i) {
    CheckedFolder f;
    ASSIGN_OR_RETURN(f.folder_key, r.String(1024));
    ASSIGN_OR_RETURN(f.data_dir, GetPath(r));
    ASSIGN_OR_RETURN(f.archive_dir, GetPath(r));
    m.folders.push_back(std::move(f));
  }
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}
std::string Encode(const FolderCheckResult& m) {
  PayloadWriter w;
  w.PutU32(static_cast<uint32_t>(m.needs_exchange.size()));
  for (const auto& k : m.needs_exchange) w.PutString(k);
  return w.Take();
}
Result<FolderCheckResult> DecodeFolderCheckResult(std::string_view p) {
  PayloadReader r(p);
  FolderCheckResult m;
  ASSIGN_OR_RETURN(uint32_t n, r.U32());
  if (n > kMaxFoldersPerCheck) return CorruptionError("FOLDER_CHECK_RESULT list too long");
  for (uint32_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(std::string k, r.String(1024));
    m.needs_exchange.push_back(std::move(k));
  }
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}
std::string Encode(const FolderFlushResult& m) {
  PayloadWriter w;
  w.PutU32(static_cast<uint32_t>(m.failed.size()));
  for (const auto& f : m.failed) {
    w.PutString(f.intname);
    w.PutString(f.error);
  }
  return w.Take();
}
Result<FolderFlushResult> DecodeFolderFlushResult(std::string_view p) {
  PayloadReader r(p);
  FolderFlushResult m;
  ASSIGN_OR_RETURN(uint32_t n, r.U32());
  for (uint32_t i = 0; i < n; ++i) {
    FolderFlushResult::Failure f;
    ASSIGN_OR_RETURN(f.intname, r.String(4096));
    ASSIGN_OR_RETURN(f.error, r.String(4096));
    m.failed.push_back(std::move(f));
  }
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}
std::string Encode(const MessagesFetch& m) {
  PayloadWriter w;
  w.PutString(m.folder_key);
  w.PutU32(static_cast<uint32_t>(m.messages.size()));
  for (const auto& [uid, archived] : m.messages) {
    w.PutU32(uid);
    w.PutU8(archived ? 1 : 0);
  }
  return w.Take();
}
Result<MessagesFetch> DecodeMessagesFetch(std::string_view p) {
  PayloadReader r(p);
  MessagesFetch m;
  ASSIGN_OR_RETURN(m.folder_key, r.String(1024));
  ASSIGN_OR_RETURN(uint32_t n, r.U32());
  if (n > kMaxMessagesPerFetch) {
    return CorruptionError("MESSAGES_FETCH of " + std::to_string(n) + " messages exceeds " +
                           std::to_string(kMaxMessagesPerFetch));
  }
  for (uint32_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(uint32_t uid, r.U32());
    ASSIGN_OR_RETURN(bool archived, GetBool(r));
    m.messages.emplace_back(uid, archived);
  }
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}
std::string Encode(const PassDone& m) {
  PayloadWriter w;
  w.PutU32(static_cast<uint32_t>(m.users.size()));
  for (const auto& u : m.users) w.PutString(u);
  w.PutI64(m.time);
  return w.Take();
}
Result<PassDone> DecodePassDone(std::string_view p) {
  PayloadReader r(p);
  PassDone m;
  ASSIGN_OR_RETURN(uint32_t n, GetCount(r));
  for (uint32_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(auto u, r.String(1024));
    m.users.push_back(std::move(u));
  }
  ASSIGN_OR_RETURN(m.time, r.I64());
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}

std::string Encode(const RestoreDone& m) {
  PayloadWriter w;
  w.PutString(m.uniqueid);
  w.PutU32(m.messages);
  return w.Take();
}
Result<RestoreDone> DecodeRestoreDone(std::string_view p) {
  PayloadReader r(p);
  RestoreDone m;
  ASSIGN_OR_RETURN(m.uniqueid, r.String(1024));
  ASSIGN_OR_RETURN(m.messages, r.U32());
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}

std::string Encode(const Hello& m) {
  PayloadWriter w;
  w.PutString(m.magic);
  w.PutU32(m.version);
  w.PutString(m.mode);
  return w.Take();
}
Result<Hello> DecodeHello(std::string_view p) {
  PayloadReader r(p);
  Hello m;
  ASSIGN_OR_RETURN(m.magic, r.String(64));
  ASSIGN_OR_RETURN(m.version, r.U32());
  ASSIGN_OR_RETURN(m.mode, r.String(64));
  RETURN_IF_ERROR(r.ExpectEnd());
  if (m.magic != kMagic) return CorruptionError("bad protocol magic");
  return m;
}

std::string Encode(const HelloOk& m) {
  PayloadWriter w;
  w.PutU32(m.version);
  w.PutString(m.instance_id);
  w.PutU8(m.cyrus_running);
  return w.Take();
}
Result<HelloOk> DecodeHelloOk(std::string_view p) {
  PayloadReader r(p);
  HelloOk m;
  ASSIGN_OR_RETURN(m.version, r.U32());
  ASSIGN_OR_RETURN(m.instance_id, r.String(256));
  ASSIGN_OR_RETURN(m.cyrus_running, GetBool(r));
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}

std::string Encode(const FolderBegin& m) {
  PayloadWriter w;
  w.PutString(m.folder_key);
  w.PutString(m.owner);
  w.PutString(m.intname);
  Put(w, m.data_dir);
  Put(w, m.archive_dir);
  w.PutU8(m.full);
  w.PutU8(m.unsettled);
  w.PutU32(static_cast<uint32_t>(m.files.size()));
  for (const auto& f : m.files) {
    Put(w, f.path);
    Put(w, f.source);
  }
  return w.Take();
}
Result<FolderBegin> DecodeFolderBegin(std::string_view p) {
  PayloadReader r(p);
  FolderBegin m;
  ASSIGN_OR_RETURN(m.folder_key, r.String(1024));
  ASSIGN_OR_RETURN(m.owner, r.String(1024));
  ASSIGN_OR_RETURN(m.intname, r.String(4096));
  ASSIGN_OR_RETURN(m.data_dir, GetPath(r));
  ASSIGN_OR_RETURN(m.archive_dir, GetPath(r));
  ASSIGN_OR_RETURN(m.full, GetBool(r));
  ASSIGN_OR_RETURN(m.unsettled, GetBool(r));
  ASSIGN_OR_RETURN(uint32_t n, GetCount(r));
  if (n > 16) return CorruptionError("folder lists too many metadata files");
  for (uint32_t i = 0; i < n; ++i) {
    FolderFile f;
    ASSIGN_OR_RETURN(f.path, GetPath(r));
    ASSIGN_OR_RETURN(f.source, GetStat(r));
    m.files.push_back(std::move(f));
  }
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}

std::string Encode(const MessagePut& m) {
  PayloadWriter w;
  w.PutU32(m.uid);
  w.PutU8(m.archived);
  w.PutU64(m.size);
  return w.Take();
}
Result<MessagePut> DecodeMessagePut(std::string_view p) {
  PayloadReader r(p);
  MessagePut m;
  ASSIGN_OR_RETURN(m.uid, r.U32());
  ASSIGN_OR_RETURN(m.archived, GetBool(r));
  ASSIGN_OR_RETURN(m.size, r.U64());
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}

std::string Encode(const FolderDelete& m) {
  PayloadWriter w;
  w.PutString(m.folder_key);
  w.PutU8(m.force);
  return w.Take();
}
Result<FolderDelete> DecodeFolderDelete(std::string_view p) {
  PayloadReader r(p);
  FolderDelete m;
  ASSIGN_OR_RETURN(m.folder_key, r.String(1024));
  ASSIGN_OR_RETURN(m.force, GetBool(r));
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}

std::string Encode(const FilePut& m) {
  PayloadWriter w;
  Put(w, m.path);
  w.PutString(m.owner);
  w.PutU8(static_cast<uint8_t>(m.kind));
  Put(w, m.source);
  w.PutU8(m.unsettled);
  if (m.kind == EntryKind::kSymlink) {
    w.PutString(m.target);
  } else {
    w.PutU64(m.size);
  }
  return w.Take();
}
Result<FilePut> DecodeFilePut(std::string_view p) {
  PayloadReader r(p);
  FilePut m;
  ASSIGN_OR_RETURN(m.path, GetPath(r));
  ASSIGN_OR_RETURN(m.owner, r.String(1024));
  ASSIGN_OR_RETURN(uint8_t kind, r.U8());
  if (kind != 1 && kind != 2) return CorruptionError("file kind out of range");
  m.kind = static_cast<EntryKind>(kind);
  ASSIGN_OR_RETURN(m.source, GetStat(r));
  ASSIGN_OR_RETURN(m.unsettled, GetBool(r));
  if (m.kind == EntryKind::kSymlink) {
    ASSIGN_OR_RETURN(m.target, r.String(4096));
  } else {
    ASSIGN_OR_RETURN(m.size, r.U64());
  }
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}

std::string Encode(const ErrorMsg& m) {
  PayloadWriter w;
  w.PutU32(m.code);
  w.PutString(m.message);
  return w.Take();
}
Result<ErrorMsg> DecodeError(std::string_view p) {
  PayloadReader r(p);
  ErrorMsg m;
  ASSIGN_OR_RETURN(m.code, r.U32());
  ASSIGN_OR_RETURN(m.message, r.String(1 << 16));
  RETURN_IF_ERROR(r.ExpectEnd());
  return m;
}

std::string EncodeManifestChunk(const std::vector<ManifestEntry>& entries) {
  ManifestChunkWriter w;
  for (const auto& e : entries) w.Add(e);
  return w.Finish();
}
void ManifestChunkWriter::Add(const ManifestEntryView& e) {
  Put(body_, e);
  ++n_;
}
void ManifestChunkWriter::Add(const ManifestEntry& e) {
  Put(body_, e);
  ++n_;
}
std::string ManifestChunkWriter::Finish() {
  PayloadWriter w;
  w.PutU32(n_);
  w.PutBytes(body_.Take());
  n_ = 0;
  return w.Take();
}
Status VisitManifestChunk(std::string_view p,
                          const std::function<void(const ManifestEntryView&)>& fn) {
  PayloadReader r(p);
  ASSIGN_OR_RETURN(uint32_t n, GetCount(r));
  for (uint32_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(auto e, GetEntry(r));
    fn(e);
  }
  return r.ExpectEnd();
}

Result<std::vector<ManifestEntry>> DecodeManifestChunk(std::string_view p) {
  std::vector<ManifestEntry> out;
  RETURN_IF_ERROR(VisitManifestChunk(p, [&](const ManifestEntryView& v) {
    out.push_back({{std::string(v.root), std::string(v.rel)},
                   std::string(v.owner),
                   std::string(v.folder_key),
                   v.kind,
                   v.source,
                   v.unsettled,
                   v.index_minor});
  }));
  return out;
}

std::string EncodeNeed(const std::vector<NeedItem>& items) {
  PayloadWriter w;
  w.PutU32(static_cast<uint32_t>(items.size()));
  for (const auto& i : items) {
    w.PutU32(i.uid);
    w.PutU8(i.archived);
  }
  return w.Take();
}
Result<std::vector<NeedItem>> DecodeNeed(std::string_view p) {
  PayloadReader r(p);
  ASSIGN_OR_RETURN(uint32_t n, GetCount(r));
  std::vector<NeedItem> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    NeedItem it;
    ASSIGN_OR_RETURN(it.uid, r.U32());
    ASSIGN_OR_RETURN(it.archived, GetBool(r));
    out.push_back(it);
  }
  RETURN_IF_ERROR(r.ExpectEnd());
  return out;
}

std::string EncodeU32(uint32_t v) {
  PayloadWriter w;
  w.PutU32(v);
  return w.Take();
}
std::string EncodeU64(uint64_t v) {
  PayloadWriter w;
  w.PutU64(v);
  return w.Take();
}
std::string EncodeString(std::string_view s) {
  PayloadWriter w;
  w.PutString(s);
  return w.Take();
}
std::string EncodePath(const WirePath& p) {
  PayloadWriter w;
  Put(w, p);
  return w.Take();
}
Result<uint32_t> DecodeU32(std::string_view p) {
  PayloadReader r(p);
  ASSIGN_OR_RETURN(uint32_t v, r.U32());
  RETURN_IF_ERROR(r.ExpectEnd());
  return v;
}
Result<uint64_t> DecodeU64(std::string_view p) {
  PayloadReader r(p);
  ASSIGN_OR_RETURN(uint64_t v, r.U64());
  RETURN_IF_ERROR(r.ExpectEnd());
  return v;
}
Result<std::string> DecodeString(std::string_view p) {
  PayloadReader r(p);
  ASSIGN_OR_RETURN(std::string v, r.String(1 << 16));
  RETURN_IF_ERROR(r.ExpectEnd());
  return v;
}
Result<WirePath> DecodePath(std::string_view p) {
  PayloadReader r(p);
  ASSIGN_OR_RETURN(auto v, GetPath(r));
  RETURN_IF_ERROR(r.ExpectEnd());
  return v;
}

std::string EncodeStatus(const Status& s) {
  return Encode(ErrorMsg{static_cast<uint32_t>(s.code()), s.message()});
}
Status StatusFromError(std::string_view payload) {
  auto e = DecodeError(payload);
  if (!e.ok()) return e.error().WithContext("undecodable ERROR frame");
  Code code = e->code <= static_cast<uint32_t>(Code::kFailedPrecondition)
                  ? static_cast<Code>(e->code)
                  : Code::kInternal;
  if (code == Code::kOk) code = Code::kInternal;
  return Status(code, "peer: " + e->message);
}

}  // namespace cyrsync::protocol
