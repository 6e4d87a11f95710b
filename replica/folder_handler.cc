// FOLDER_BEGIN / FOLDER_DELETE: installs one mailbox's metadata set and the message files its
// new index names, or removes a mailbox that is gone on the source.
#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <map>
#include <set>

#include "common/bytes.h"
#include "common/hash.h"
#include "cyrus/index.h"
#include "cyrus/paths.h"
#include "replica/session.h"

namespace cyrsync::replica {
namespace {

using protocol::Frame;
using protocol::Transport;
using protocol::WirePath;
using Loc = std::pair<uint32_t, bool>;  // uid, archived
using Guid = Sha1Digest;  // a message GUID: the SHA-1 of its file (common/hash.h)
// The messages an index names, sorted by location with one entry each (see SortLive). Vectors,
// not maps: a --full pass checks every message of every folder, and a node per message was a
// third of the daemon's time there.
using LiveList = std::vector<std::pair<Loc, Guid>>;
using LocList = std::vector<Loc>;  // sorted, unique

bool LocLess(const std::pair<Loc, Guid>& a, const std::pair<Loc, Guid>& b) {
  return a.first < b.first;
}

// Sorts by location; of two entries for one location the later one wins (cyrus.expunge is read
// after cyrus.index).
void SortLive(LiveList* v) {
  // An index lists its records in uid order: usually nothing to do.
  if (std::adjacent_find(v->begin(), v->end(), [](const auto& a, const auto& b) {
        return !(a.first < b.first);
      }) == v->end()) {
    return;
  }
  std::stable_sort(v->begin(), v->end(), LocLess);
  size_t w = 0;
  for (size_t i = 0; i < v->size(); ++i) {
    if (w > 0 && (*v)[w - 1].first == (*v)[i].first) {
      (*v)[w - 1] = (*v)[i];
    } else {
      (*v)[w++] = (*v)[i];
    }
  }
  v->resize(w);
}

const Guid* FindLive(const LiveList& v, Loc loc) {
  auto it = std::lower_bound(v.begin(), v.end(), std::pair<Loc, Guid>{loc, {}}, LocLess);
  return it != v.end() && it->first == loc ? &it->second : nullptr;
}

void SortLocs(LocList* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

bool HasLoc(const LocList& v, Loc loc) { return std::binary_search(v.begin(), v.end(), loc); }

MessageDigest DigestOf(const LocList& locs) {
  MessageDigest d = MessageDigest::Empty();
  for (const auto& [uid, archived] : locs) d.Add(uid, archived);
  return d;
}

MessageDigest DigestOf(const LiveList& live) {
  MessageDigest d = MessageDigest::Empty();
  for (const auto& [loc, guid] : live) d.Add(loc.first, loc.second);
  return d;
}

// Tees a body into a staged file and, for cyrus.index/cyrus.expunge, into memory.
class TeeSink final : public protocol::BodySink {
 public:
  TeeSink(FileSink* file, std::string* copy) : file_(file), copy_(copy) {}
  Status Write(std::string_view chunk) override {
    if (copy_) copy_->append(chunk);
    return file_->Write(chunk);
  }

 private:
  FileSink* file_;
  std::string* copy_;
};

struct MetaIn {
  protocol::FolderFile file;
  StagedFile staged;
  uint64_t size = 0;
};

struct Incoming {
  protocol::FolderBegin fb;
  std::string data_abs, archive_abs;
  std::vector<MetaIn> meta;
  std::string index_bytes, expunge_bytes;  // dropped once the install is queued (DropBytes)
  std::optional<uint32_t> index_minor;     // of the index the exchange compared against
  LiveList live;    // sorted (SortLive)
  LocList present;  // sorted (SortLocs)
  std::vector<protocol::NeedItem> need;
  bool missing_any = false;
  bool moved = false;
  std::string occupant;  // another folder recorded at this directory (gone on the source)
  // Message files received (or linked from a moved folder's old directory), staged under hidden
  // names in their folder directory until the folder commits (Store::BeginStagingIn): a refused
  // exchange removes them, a killed daemon removes them at its next start.
  std::vector<StagedFile> messages;
  std::string staging_note;
  std::vector<std::string> created_dirs;  // by PrepareStaging, deepest first
  std::vector<std::string> staged_all;  // every temp file of this exchange, removed at the end
  bool split() const { return archive_abs != data_abs; }
  std::optional<FolderRow> old_row;
  std::vector<StoredEntry> old_entries;
};

Status ReceiveMetaFile(Transport& t, Store& s, Incoming& in, const protocol::FolderFile& f);

// A failed write (a full disk) names the temp file; the context says what it was to become.
Status ReceiveMeta(Transport& t, Store& s, Incoming& in) {
  for (const auto& f : in.fb.files) {
    Status st = ReceiveMetaFile(t, s, in, f);
    if (!st.ok()) return st.WithContext("receiving " + in.fb.intname + " " + f.path.rel);
  }
  return Status::Ok();
}

Status ReceiveMetaFile(Transport& t, Store& s, Incoming& in, const protocol::FolderFile& f) {
  std::string name = Basename(f.path.rel);
  if (!cyrus::IsMetaFileName(name)) {
    return InvalidArgumentError("folder file is not cyrus.* metadata: " + f.path.rel);
  }
  ASSIGN_OR_RETURN(std::string final_abs, s.Resolve(f.path));
  ASSIGN_OR_RETURN(std::string staged, s.NewStagePath(f.path));
  in.staged_all.push_back(staged);
  ASSIGN_OR_RETURN(auto wf, s.env()->NewWritable(staged, 0600));
  FileSink sink(std::move(wf), FileSink::Hash::kNone);
  std::string* copy = name == "cyrus.index"     ? &in.index_bytes
                      : name == "cyrus.expunge" ? &in.expunge_bytes
                                                : nullptr;
  TeeSink tee(&sink, copy);
  auto basis = s.OpenInstalled(f.path);
  ASSIGN_OR_RETURN(uint64_t size, protocol::ReceiveBody(t, tee, s.options().max_file_size,
                                                        basis.file.get(), basis.size));
  RETURN_IF_ERROR(sink.Finish());
  if (s.options().owner.set) {
    RETURN_IF_ERROR(s.env()->Chown(staged, s.options().owner.uid, s.options().owner.gid));
  }
  RETURN_IF_ERROR(s.env()->SetMtime(staged, f.source.mtime_ns));
  in.meta.push_back({f, {staged, final_abs}, size});
  return Status::Ok();
}

// A message's location: its uid and whether it lives in the archive directory. Without a
// separate archive partition the flag does not change where the file is, so it is dropped.
Loc Where(uint32_t uid, bool archived, bool split) { return {uid, archived && split}; }

// Appends the messages an index names; SortLive orders them once all are in.
Status AddLive(std::string_view bytes, const std::string& what, bool split, LiveList* live) {
  if (bytes.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(auto idx, cyrus::ParseIndex(bytes, what));
  live->reserve(live->size() + idx.records.size());
  for (const auto& r : idx.records) {
    if (r.HasFile()) live->emplace_back(Where(r.uid, r.Archived(), split), r.guid);
  }
  return Status::Ok();
}

const StoredEntry* FindEntry(const std::vector<StoredEntry>& v, std::string_view name) {
  for (const auto& e : v) {
    if (Basename(e.entry.path.rel) == name) return &e;
  }
  return nullptr;
}

// Collects the message files of one directory as readdir names them, and the hidden temp files
// an earlier daemon process left there (after a power loss its staging note may be lost).
struct MessageLister {
  const Store& s;
  bool archived;
  LocList* out;
  std::vector<std::string> stale;
  void operator()(std::string_view name, EntryType type) {
    if (type != EntryType::kFile) return;
    if (cyrus::IsMessageFileName(name)) {
      uint32_t uid = 0;
      auto [end, ec] = std::from_chars(name.data(), name.data() + name.size() - 1, uid);
      if (ec == std::errc()) out->emplace_back(uid, archived);  // else beyond any uid
    } else if (s.IsStaleStageName(name)) {
      stale.emplace_back(name);
    }
  }
  void RemoveStale(const std::string& dir) {
    for (const auto& name : stale) (void)s.env()->Remove(JoinPath(dir, name));
  }
};

// The message files of dir (absent: none); removes the stale temp files there.
Status ListMessages(const Store& s, const std::string& dir, bool archived, LocList* out) {
  MessageLister lister{s, archived, out, {}};
  Status st = s.env()->ScanDir(dir, std::ref(lister));
  if (!st.ok()) return st.code() == Code::kNotFound ? Status::Ok() : st;
  lister.RemoveStale(dir);
  return Status::Ok();
}

// ListMessages of a peer-named directory, checked as Resolve checks it, in one path walk.
Status ListPeerMessages(const Store& s, const WirePath& dir, bool archived, LocList* out) {
  MessageLister lister{s, archived, out, {}};
  Status st = s.ScanPeerDir(dir, std::ref(lister));
  if (!st.ok()) return st.code() == Code::kNotFound ? Status::Ok() : st;
  if (!lister.stale.empty()) {
    ASSIGN_OR_RETURN(std::string abs, s.Resolve(dir, Store::Target::kDir));
    lister.RemoveStale(abs);
  }
  return Status::Ok();
}

// What the replica already holds: the live set of its installed index when that index is still
// exactly what was installed (and the folder did not move), else a readdir of its directories.
Status FindPresent(Store& s, Incoming& in) {
  const StoredEntry* old_index = FindEntry(in.old_entries, "cyrus.index");
  std::optional<std::string> index_abs;
  if (!in.fb.full && !in.moved && in.occupant.empty() && old_index) {
    index_abs = s.InstalledPath(*old_index);
  }
  if (index_abs) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(s.env(), *index_abs));
    LiveList old_live;
    if (AddLive(bytes, *index_abs, in.split(), &old_live).ok()) {
      const StoredEntry* old_exp = FindEntry(in.old_entries, "cyrus.expunge");
      if (auto eabs = old_exp ? s.InstalledPath(*old_exp) : std::nullopt) {
        auto ebytes = ReadFileToString(s.env(), *eabs);
        if (ebytes.ok()) (void)AddLive(*ebytes, *eabs, in.split(), &old_live);
      }
      for (const auto& [loc, guid] : old_live) in.present.push_back(loc);
      SortLocs(&in.present);
      return Status::Ok();
    }
  }
  RETURN_IF_ERROR(ListMessages(s, in.data_abs, false, &in.present));
  if (in.split()) RETURN_IF_ERROR(ListMessages(s, in.archive_abs, true, &in.present));
  SortLocs(&in.present);
  return Status::Ok();
}

std::string MessagePath(const Incoming& in, uint32_t uid, bool archived) {
  return JoinPath(archived ? in.archive_abs : in.data_abs, std::to_string(uid) + ".");
}

// A folder that moved (a rename in the by-name layout) keeps its message files: link them from
// the old directory instead of asking the source for them again.
void LinkFromOldLocation(Store& s, Incoming& in) {
  if (!in.moved || !in.old_row) return;
  auto old_data = s.Resolve(in.old_row->data_dir, Store::Target::kDir);
  auto old_arch = s.Resolve(in.old_row->archive_dir, Store::Target::kDir);
  if (!old_data.ok() || !old_arch.ok()) return;
  std::vector<protocol::NeedItem> still;
  for (const auto& n : in.need) {
    std::string from = JoinPath(n.archived ? *old_arch : *old_data, std::to_string(n.uid) + ".");
    std::string staged = s.NewStagePathIn(n.archived ? in.archive_abs : in.data_abs);
    if (!s.env()->Link(from, staged).ok()) {
      still.push_back(n);
      continue;
    }
    in.staged_all.push_back(staged);
    in.messages.push_back({staged, MessagePath(in, n.uid, n.archived)});
  }
  in.need = std::move(still);
}

// The folder's directories exist (empty until the commit) and are noted before a temp file is
// staged in them.
// Records the directories it creates, so that a refused exchange leaves no trace.
Status PrepareStaging(Store& s, Incoming& in) {
  std::vector<std::string> dirs{in.data_abs};
  if (in.split()) dirs.push_back(in.archive_abs);
  for (const auto& d : dirs) {
    std::vector<std::string> missing;
    for (std::string cur = d; !cur.empty() && cur != "/" && !s.env()->Stat(cur).ok();
         cur = Dirname(cur)) {
      missing.push_back(cur);
    }
    RETURN_IF_ERROR(s.EnsureDir(d));
    in.created_dirs.insert(in.created_dirs.end(), missing.begin(), missing.end());
  }
  ASSIGN_OR_RETURN(in.staging_note, s.BeginStagingIn(dirs));
  return Status::Ok();
}

// The messages the folder's index (the new one, or for a check the installed one) names and its
// directories lack.
Status ComputeMissing(Store& s, Incoming& in) {
  if (in.meta.empty()) {
    // Check only: the installed index is the source's current one.
    const StoredEntry* idx = FindEntry(in.old_entries, "cyrus.index");
    auto abs = idx ? s.InstalledPath(*idx) : std::nullopt;
    if (!abs) {
      return NotFoundError("folder " + in.fb.folder_key + " has no installed index to check");
    }
    ASSIGN_OR_RETURN(in.index_bytes, ReadFileToString(s.env(), *abs));
  }
  RETURN_IF_ERROR(AddLive(in.index_bytes, in.fb.intname + " cyrus.index", in.split(), &in.live));
  RETURN_IF_ERROR(
      AddLive(in.expunge_bytes, in.fb.intname + " cyrus.expunge", in.split(), &in.live));
  SortLive(&in.live);
  RETURN_IF_ERROR(FindPresent(s, in));
  for (const auto& [loc, guid] : in.live) {
    if (!in.occupant.empty() || !HasLoc(in.present, loc)) in.need.push_back({loc.first, loc.second});
  }
  return Status::Ok();
}

Status ComputeNeed(Store& s, Incoming& in) {
  RETURN_IF_ERROR(ComputeMissing(s, in));
  if (!in.need.empty()) RETURN_IF_ERROR(PrepareStaging(s, in));
  LinkFromOldLocation(s, in);
  return Status::Ok();
}

Status StoreMessage(Transport& t, Store& s, Incoming& in, const protocol::MessagePut& mp,
                    Loc loc);

Status ReceiveMessage(Transport& t, Store& s, Incoming& in, const Frame& f,
                      const std::set<Loc>& wanted) {
  ASSIGN_OR_RETURN(auto mp, protocol::DecodeMessagePut(f.payload));
  Loc loc = Where(mp.uid, mp.archived, in.split());
  if (!wanted.count(loc)) {
    return CorruptionError("protocol error: message " + std::to_string(mp.uid) + " not requested");
  }
  Status st = StoreMessage(t, s, in, mp, loc);
  if (st.ok()) return st;
  return st.WithContext("receiving " + in.fb.intname + " uid " + std::to_string(mp.uid));
}

Status StoreMessage(Transport& t, Store& s, Incoming& in, const protocol::MessagePut& mp,
                    Loc loc) {
  std::string staged = s.NewStagePathIn(mp.archived ? in.archive_abs : in.data_abs);
  in.staged_all.push_back(staged);
  ASSIGN_OR_RETURN(auto wf, s.env()->NewWritable(staged, 0600));
  if (s.options().owner.set) {
    RETURN_IF_ERROR(wf->Chown(s.options().owner.uid, s.options().owner.gid));
  }
  FileSink sink(std::move(wf), FileSink::Hash::kSha1);
  ASSIGN_OR_RETURN(uint64_t got, protocol::ReceiveBody(t, sink, s.options().max_file_size));
  if (mp.size != 0 && got != mp.size) {
    return CorruptionError("message " + std::to_string(mp.uid) + " declared " +
                           std::to_string(mp.size) + " bytes, sent " + std::to_string(got));
  }
  RETURN_IF_ERROR(sink.Finish());
  const Guid* guid = FindLive(in.live, loc);
  if (guid && *guid != Guid{} &&
      sink.Sha1HexDigest() != HexEncode(std::string_view(
                                  reinterpret_cast<const char*>(guid->data()), guid->size()))) {
    s.log().warn("message content does not match its GUID mailbox={} uid={}", in.fb.intname,
                 mp.uid);
  }
  in.messages.push_back({staged, MessagePath(in, mp.uid, mp.archived)});
  return Status::Ok();
}

Status ReceiveMessages(Transport& t, Store& s, Incoming& in) {
  std::set<Loc> wanted;
  for (const auto& n : in.need) wanted.insert(Where(n.uid, n.archived, in.split()));
  while (true) {
    ASSIGN_OR_RETURN(Frame f, t.Receive());
    if (f.type == protocol::kFolderCommit) {
      if (!f.payload.empty()) return CorruptionError("protocol error: FOLDER_COMMIT with payload");
      return Status::Ok();
    }
    if (f.type == protocol::kMessagePut) {
      RETURN_IF_ERROR(ReceiveMessage(t, s, in, f, wanted));
    } else if (f.type == protocol::kMessageMissing) {
      ASSIGN_OR_RETURN(uint32_t uid, protocol::DecodeU32(f.payload));
      if (!wanted.count(Where(uid, false, false)) && !wanted.count(Where(uid, true, in.split()))) {
        return CorruptionError("protocol error: missing message " + std::to_string(uid) +
                               " was not requested");
      }
      in.missing_any = true;
    } else {
      return CorruptionError("protocol error: unexpected type " + std::to_string(f.type) +
                             " inside a folder");
    }
  }
}

void RemoveQuietly(Env* env, const std::string& path) {
  Status st = env->Remove(path);
  (void)st;  // absent already is fine: removal is idempotent
}

// Removes message files of a directory that the new set does not keep, plus stale metadata.
void RemoveOldLocation(Store& s, const Incoming& in) {
  if (!in.moved || !in.old_row) return;
  for (const auto& e : in.old_entries) {
    auto abs = s.Resolve(e.entry.path);
    if (abs.ok()) RemoveQuietly(s.env(), *abs);
  }
  for (const auto& dir : {in.old_row->data_dir, in.old_row->archive_dir}) {
    auto abs = s.Resolve(dir, Store::Target::kDir);
    if (!abs.ok()) continue;
    LocList files;
    (void)ListMessages(s, *abs, false, &files);
    for (const auto& [uid, a] : files) RemoveQuietly(s.env(), JoinPath(*abs, std::to_string(uid) + "."));
    (void)s.env()->RemoveDir(*abs);
  }
}

// True when two files of equal size hold the same bytes; read a chunk at a time (a big
// cyrus.cache is compared without holding it whole).
bool SameBytes(Env* env, const std::string& a, const std::string& b) {
  auto fa = env->OpenRead(a);
  auto fb = env->OpenRead(b);
  if (!fa.ok() || !fb.ok()) return false;
  std::vector<char> ba(256 << 10), bb(256 << 10);
  for (uint64_t off = 0;;) {
    auto na = (*fa)->ReadAt(off, ba);
    auto nb = (*fb)->ReadAt(off, bb);
    if (!na.ok() || !nb.ok() || *na != *nb) return false;
    if (*na == 0) return true;
    if (std::memcmp(ba.data(), bb.data(), *na) != 0) return false;
    off += *na;
  }
}

// The installed copy already holds exactly this content (a file the source copies again because
// it was unsettled): keep it, so the replica's file and its stat stay put.
bool SameAsInstalled(Store& s, const Incoming& in, const MetaIn& m) {
  for (const auto& e : in.old_entries) {
    if (!(e.entry.path == m.file.path) || e.local.size != m.size || !s.StillInstalled(e)) continue;
    return SameBytes(s.env(), m.staged.staged, m.staged.final);
  }
  return false;
}

// The files the folder installs, in order, once its directories exist.
Result<std::vector<StagedFile>> PrepareCommit(Store& s, Incoming& in) {
  RETURN_IF_ERROR(s.CheckCyrusStopped());
  RETURN_IF_ERROR(s.EnsureDir(in.data_abs));
  if (in.split()) RETURN_IF_ERROR(s.EnsureDir(in.archive_abs));
  // Message files first: by the time the new cyrus.index is in place, every file it names is.
  std::vector<StagedFile> staged = in.messages;
  std::vector<const MetaIn*> order;
  // cyrus.index goes last: it is what makes the new set current.
  for (const auto& m : in.meta) {
    if (Basename(m.file.path.rel) != "cyrus.index") order.push_back(&m);
  }
  for (const auto& m : in.meta) {
    if (Basename(m.file.path.rel) == "cyrus.index") order.push_back(&m);
  }
  for (const MetaIn* m : order) {
    if (SameAsInstalled(s, in, *m)) {
      RemoveQuietly(s.env(), m->staged.staged);
    } else {
      staged.push_back(m->staged);
    }
  }
  for (const auto& m : in.meta) RETURN_IF_ERROR(s.EnsureDir(Dirname(m.staged.final)));
  return staged;
}

// A queued install keeps only what recording it needs: a big folder's index is megabytes.
void DropBytes(Incoming& in) {
  if (in.index_bytes.size() >= 12) in.index_minor = LoadBE32(in.index_bytes, 8);
  in.index_bytes = std::string();
  in.expunge_bytes = std::string();
}

Status RecordFolder(Store& s, const Incoming& in) {
  if (in.meta.empty()) return Status::Ok();
  std::vector<StoredEntry> ups;
  std::set<WirePath> now;
  for (const auto& m : in.meta) {
    StoredEntry e;
    e.entry.path = m.file.path;
    e.entry.owner = in.fb.owner;
    e.entry.folder_key = in.fb.folder_key;
    e.entry.kind = protocol::EntryKind::kMeta;
    e.entry.source = m.file.source;
    e.entry.unsettled = in.fb.unsettled || in.missing_any;
    if (Basename(m.file.path.rel) == "cyrus.index" && in.index_minor) {
      e.entry.index_minor = *in.index_minor;
    }
    ASSIGN_OR_RETURN(e.local, s.LocalStat(m.staged.final));
    now.insert(m.file.path);
    ups.push_back(std::move(e));
  }
  std::vector<WirePath> removed;
  for (const auto& e : in.old_entries) {
    if (!now.count(e.entry.path)) {
      removed.push_back(e.entry.path);
      if (!in.moved) {
        auto abs = s.Resolve(e.entry.path);
        if (abs.ok()) RemoveQuietly(s.env(), *abs);
      }
    }
  }
  FolderRow row{in.fb.folder_key, in.fb.owner, in.fb.intname, in.fb.data_dir, in.fb.archive_dir,
                {}};
  if (in.index_minor) row.messages = DigestOf(in.live);
  return s.manifest().Apply(ups, removed, row);
}

// Metadata the source no longer has must go even if the manifest stopped tracking it (an entry
// is dropped when the replica's copy was touched, e.g. by a replica Cyrus started for a test).
void RemoveStrayMetadata(Store& s, const Incoming& in) {
  if (in.meta.empty()) return;
  std::set<std::string> keep, dirs;
  for (const auto& m : in.meta) {
    keep.insert(m.staged.final);
    dirs.insert(Dirname(m.staged.final));
  }
  for (const auto& dir : dirs) {
    auto ls = s.env()->ListDir(dir);
    if (!ls.ok()) continue;
    for (const auto& e : *ls) {
      std::string path = JoinPath(dir, e.name);
      if (e.type == EntryType::kFile && cyrus::IsMetaFileName(e.name) && !keep.count(path)) {
        RemoveQuietly(s.env(), path);
      }
    }
  }
}

void RemoveGoneMessages(Store& s, const Incoming& in) {
  if (in.moved) return;
  for (const auto& loc : in.present) {
    if (!FindLive(in.live, loc)) {
      RemoveQuietly(s.env(), MessagePath(in, loc.first, loc.second));
    }
  }
}

Result<std::vector<StagedFile>> Exchange(Transport& t, Store& s, Incoming& in) {
  RETURN_IF_ERROR(ReceiveMeta(t, s, in));
  RETURN_IF_ERROR(ComputeNeed(s, in));
  RETURN_IF_ERROR(t.Send(protocol::kFolderNeed, protocol::EncodeNeed(in.need)));
  RETURN_IF_ERROR(ReceiveMessages(t, s, in));
  return PrepareCommit(s, in);
}

// What the replica holds for in.fb's folder: its directories (checked), manifest rows, and
// whether another folder occupies its directory or it moved.
Status LoadIncoming(Store& s, Incoming& in) {
  ASSIGN_OR_RETURN(in.data_abs, s.Resolve(in.fb.data_dir, Store::Target::kDir));
  if (in.fb.archive_dir == in.fb.data_dir) {
    in.archive_abs = in.data_abs;
  } else {
    ASSIGN_OR_RETURN(in.archive_abs, s.Resolve(in.fb.archive_dir, Store::Target::kDir));
  }
  // Another folder recorded at this directory is gone (deleted and re-created under the same
  // name in the by-name layout): remove it first so none of its files pass for the new one's.
  // Its files are not trusted as ours (readdir names them all, the new index asks for every
  // message); at commit its records are dropped and its files no longer named are removed.
  ASSIGN_OR_RETURN(auto occupant, s.manifest().FolderAtDir(in.fb.data_dir));
  if (occupant && occupant->folder_key == in.fb.folder_key) {
    in.old_row = std::move(occupant);  // the usual case: the folder is where it was
  } else {
    if (occupant) in.occupant = occupant->folder_key;
    ASSIGN_OR_RETURN(in.old_row, s.manifest().GetFolder(in.fb.folder_key));
  }
  ASSIGN_OR_RETURN(in.old_entries, s.manifest().FolderEntries(in.fb.folder_key));
  in.moved = in.old_row && !(in.old_row->data_dir == in.fb.data_dir &&
                             in.old_row->archive_dir == in.fb.archive_dir);
  return Status::Ok();
}

// True when every location of `want` is in `have` (both sorted).
bool Covers(const LocList& have, const LiveList& want) {
  auto h = have.begin();
  for (const auto& [loc, guid] : want) {
    while (h != have.end() && *h < loc) ++h;
    if (h == have.end() || *h != loc) return false;
  }
  return true;
}

// The messages the folder's installed index (with its cyrus.expunge) names, when the manifest
// still trusts that index and it parses.
std::optional<LiveList> InstalledLive(Store& s, const std::string& folder_key, bool split) {
  auto entries = s.manifest().FolderEntries(folder_key);
  if (!entries.ok()) return std::nullopt;
  const StoredEntry* idx = FindEntry(*entries, "cyrus.index");
  auto bytes = idx ? s.ReadInstalled(*idx) : std::nullopt;
  LiveList live;
  if (!bytes || !AddLive(*bytes, folder_key + " cyrus.index", split, &live).ok()) {
    return std::nullopt;
  }
  const StoredEntry* exp = FindEntry(*entries, "cyrus.expunge");
  if (auto ebytes = exp ? s.ReadInstalled(*exp) : std::nullopt) {
    if (!AddLive(*ebytes, folder_key + " cyrus.expunge", split, &live).ok()) return std::nullopt;
  }
  SortLive(&live);
  return live;
}

// An unchanged folder (--full) is whole when nothing else occupies or left its directory and
// every message its installed index names is there. Directories outside the roots are an error
// (a hostile or broken peer), as in FOLDER_BEGIN. This runs for every folder of a --full pass:
// a listing per directory and one manifest lookup, whose message digest usually equals the
// listing's; only when it does not is the installed index read.
Result<bool> CheckedWhole(Store& s, const protocol::CheckedFolder& c) {
  ASSIGN_OR_RETURN(std::string data_abs, s.PeerPath(c.data_dir));
  ASSIGN_OR_RETURN(std::string archive_abs, s.PeerPath(c.archive_dir));
  const bool split = archive_abs != data_abs;
  LocList present;
  Status listed = ListPeerMessages(s, c.data_dir, false, &present);
  if (listed.ok() && split) listed = ListPeerMessages(s, c.archive_dir, true, &present);
  if (listed.code() == Code::kInvalidArgument) return listed;
  if (!listed.ok()) return false;
  auto row = s.manifest().FolderAtDir(c.data_dir);
  if (!row.ok() || !*row || (*row)->folder_key != c.folder_key ||
      !((*row)->archive_dir == c.archive_dir)) {
    return false;  // nothing recorded here, another folder's directory, or a moved folder
  }
  if ((*row)->messages.known() && (*row)->messages == DigestOf(present)) return true;
  auto live = InstalledLive(s, c.folder_key, split);
  if (!live) return false;
  // A folder recorded before its row had a digest gets it now, from the index it was checked
  // against, so that its next check needs no read of the index.
  if (!(*row)->messages.known()) {
    (void)s.manifest().SetMessagesIfUnknown(c.folder_key, DigestOf(*live));
  }
  SortLocs(&present);
  return Covers(present, *live);
}

}  // namespace

Status HandleFolderCheck(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(auto check, protocol::DecodeFolderCheck(f.payload));
  protocol::FolderCheckResult result;
  for (const auto& c : check.folders) {
    ASSIGN_OR_RETURN(bool whole, CheckedWhole(s, c));
    if (!whole) result.needs_exchange.push_back(c.folder_key);
  }
  return t.Send(protocol::kFolderCheckResult, protocol::Encode(result));
}

namespace {

// Removes what a refused or failed exchange staged (installed files are no longer there).
void Abandon(Store& s, const Incoming& in) {
  for (const auto& p : in.staged_all) RemoveQuietly(s.env(), p);
  for (const auto& d : in.created_dirs) (void)s.env()->RemoveDir(d);  // stays if not empty
  s.EndStaging(in.staging_note);
}

// Runs once the folder's set is installed (or failed): records it and removes what it replaced.
Status AfterInstall(Store& s, const Incoming& in, const Status& installed) {
  if (!installed.ok()) {
    Abandon(s, in);
    return installed;
  }
  s.EndStaging(in.staging_note);
  if (!in.occupant.empty()) RETURN_IF_ERROR(s.manifest().RemoveFolder(in.occupant));
  RETURN_IF_ERROR(RecordFolder(s, in));
  RemoveGoneMessages(s, in);
  RemoveStrayMetadata(s, in);
  RemoveOldLocation(s, in);
  s.log().debug("folder installed mailbox={} messages_received={} missing={}", in.fb.intname,
                in.need.size(), in.missing_any);
  return Status::Ok();
}

// The folder is answered OK once its files are staged and its install queued: the session
// takes the next folder while the committer makes this one durable together with others
// (one syncfs for many folders). FOLDER_FLUSH reports installs that failed after the OK.
Status ExchangeAndQueue(Transport& t, Store& s, const std::shared_ptr<PendingInstalls>& pending,
                        Incoming in) {
  auto staged = Exchange(t, s, in);
  if (!staged.ok()) {
    Abandon(s, in);
    return staged.status();
  }
  DropBytes(in);
  auto queued = std::make_shared<const Incoming>(std::move(in));
  pending->Add();
  s.InstallAsync(std::move(*staged), [&s, pending, queued](Status installed) {
    Status st = AfterInstall(s, *queued, installed);
    if (!st.ok()) {
      s.log().error("folder install failed mailbox={} error=\"{}\"", queued->fb.intname,
                    st.ToString());
    }
    pending->Done(queued->fb.intname, st);
  });
  return t.Send(protocol::kOk, "");
}

}  // namespace

Status HandleFolderBegin(Transport& t, Store& s, const std::shared_ptr<PendingInstalls>& pending,
                         const Frame& f) {
  Incoming in;
  ASSIGN_OR_RETURN(in.fb, protocol::DecodeFolderBegin(f.payload));
  RETURN_IF_ERROR(s.CheckCyrusStopped());
  RETURN_IF_ERROR(LoadIncoming(s, in));
  return ExchangeAndQueue(t, s, pending, std::move(in));
}

Status HandleFolderDelete(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(auto del, protocol::DecodeFolderDelete(f.payload));
  RETURN_IF_ERROR(s.CheckCyrusStopped());
  s.WaitInstalled();  // a folder is removed after any install of it that is still queued
  RETURN_IF_ERROR(RemoveFolderFiles(s, del.folder_key));
  return t.Send(protocol::kOk, "");
}

Status RemoveFolderFiles(Store& s, const std::string& folder_key) {
  ASSIGN_OR_RETURN(auto row, s.manifest().GetFolder(folder_key));
  ASSIGN_OR_RETURN(auto entries, s.manifest().FolderEntries(folder_key));
  Incoming gone;
  gone.moved = true;
  gone.old_row = row;
  gone.old_entries = entries;
  if (!row) {
    for (const auto& e : entries) {
      auto abs = s.Resolve(e.entry.path);
      if (abs.ok()) RemoveQuietly(s.env(), *abs);
    }
  }
  RemoveOldLocation(s, gone);
  for (const auto& e : entries) {
    auto abs = s.Resolve(e.entry.path);
    if (abs.ok()) (void)s.env()->RemoveDir(Dirname(*abs));
  }
  RETURN_IF_ERROR(s.manifest().RemoveFolder(folder_key));
  s.log().info("folder removed folder_key={} mailbox={}", folder_key,
               row ? row->intname : std::string("?"));
  return Status::Ok();
}

}  // namespace cyrsync::replica
