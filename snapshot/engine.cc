#include "snapshot/engine.h"

#include <array>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "common/hash.h"
#include "cyrus/index.h"
#include "protocol/messages.h"
#include "snapshot/guid_map.h"
#include "snapshot/guid_set.h"

namespace cyrsync::snapshot {
namespace {

using json = nlohmann::json;
constexpr const char* kStateName = "state.json";

Guid GuidFromHex(std::string_view hex) {
  Guid g{};
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i < g.size() && 2 * i + 1 < hex.size(); ++i) {
    g[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return g;
}

// What the previous run saw: per folder its name and cyrus.* stat tuples, per user file its tuple.
struct SeenState {
  struct FolderSeen {
    std::string intname;
    std::map<std::string, std::vector<int64_t>> files;
  };
  std::map<std::string, FolderSeen> folders;
  std::map<std::string, std::vector<int64_t>> user_files;
};

std::vector<int64_t> TupleVec(const protocol::StatTuple& t) {
  return {static_cast<int64_t>(t.size), t.mtime_ns, t.ctime_ns, static_cast<int64_t>(t.ino)};
}

SeenState ParseStateOrThrow(const std::string& text) {
  SeenState s;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return s;  // unreadable: everything counts as changed
  // Each json::value() result is named: items() must not outlive the object it walks.
  const json folders = j.value("folders", json::object());
  for (auto& [key, f] : folders.items()) {
    auto& fs = s.folders[key];
    fs.intname = f.value("intname", "");
    const json files = f.value("files", json::object());
    for (auto& [name, v] : files.items()) fs.files[name] = v.get<std::vector<int64_t>>();
  }
  const json user_files = j.value("user_files", json::object());
  for (auto& [name, v] : user_files.items()) s.user_files[name] = v.get<std::vector<int64_t>>();
  return s;
}

SeenState ParseState(const std::string& text) {
  try {
    return ParseStateOrThrow(text);
  } catch (const json::exception&) {
    return SeenState{};  // a damaged state only costs a full re-read of the user's folders
  }
}

std::string DumpState(const SeenState& s) {
  json j;
  j["format"] = "cyrsync-snapshot-state";
  j["version"] = 1;
  j["folders"] = json::object();
  for (const auto& [key, f] : s.folders) {
    j["folders"][key] = {{"intname", f.intname}, {"files", f.files}};
  }
  j["user_files"] = s.user_files;
  return j.dump(1);
}

Result<SeenState> LoadPrevious(Env* env, IndexDb& idx, const ArchivePaths& paths) {
  ASSIGN_OR_RETURN(auto e, idx.Latest(kStateName));
  if (!e) return SeenState{};
  ASSIGN_OR_RETURN(std::string text, ReadEntry(env, paths.archive, *e));
  return ParseState(text);
}

bool FolderChanged(const protocol::FolderState& now, const SeenState& prev) {
  auto it = prev.folders.find(now.folder_key);
  if (it == prev.folders.end() || it->second.intname != now.intname) return true;
  for (const auto& f : now.files) {
    auto p = it->second.files.find(f.name);
    if (p == it->second.files.end() || p->second != TupleVec(f.stat)) return true;
  }
  return false;
}

struct MetaFile {
  protocol::StateFile info;
  std::string bytes;
};

using FolderFiles = std::optional<std::vector<MetaFile>>;  // nullopt: the folder is gone

// The answer to a FOLDER_FETCH: every cyrus.* file, read by the daemon under Cyrus's locks.
Result<FolderFiles> ReceiveFolder(protocol::Transport& t) {
  std::vector<MetaFile> out;
  while (true) {
    ASSIGN_OR_RETURN(protocol::Frame f, t.Receive());
    if (f.type == protocol::kAbsent) return FolderFiles();
    if (f.type == protocol::kOk) return FolderFiles(std::move(out));
    if (f.type == protocol::kError) return protocol::StatusFromError(f.payload);
    if (f.type != protocol::kMetaFile) return CorruptionError("unexpected frame in FOLDER_FETCH");
    MetaFile m;
    ASSIGN_OR_RETURN(m.info, protocol::DecodeStateFile(f.payload));
    ASSIGN_OR_RETURN(m.bytes, protocol::ReceiveBodyToString(t, uint64_t{4} << 30));
    out.push_back(std::move(m));
  }
}

// One MESSAGES_FETCH for want[from, from + n).
Status RequestMessages(protocol::Transport& t, const std::string& key,
                       const std::vector<cyrus::IndexRecord>& want, size_t from, size_t n) {
  protocol::MessagesFetch req{key, {}};
  for (size_t i = from; i < from + n; ++i) req.messages.emplace_back(want[i].uid, want[i].Archived());
  return t.Send(protocol::kMessagesFetch, protocol::Encode(req));
}

// The answer to one MESSAGE_FETCH; nullopt when the message is gone.
// A received message file and its SHA-1, computed as it arrived.
struct Received {
  std::string body;
  std::string sha1;
};

Result<std::optional<Received>> ReceiveMessage(protocol::Transport& t) {
  ASSIGN_OR_RETURN(protocol::Frame f, t.Receive());
  if (f.type == protocol::kAbsent) return std::optional<Received>();
  if (f.type == protocol::kError) return protocol::StatusFromError(f.payload);
  if (f.type != protocol::kMessagePut) return CorruptionError("unexpected frame in MESSAGE_FETCH");
  Received r;
  // The daemon sends these bodies without a digest; AddMessage checks them against their GUIDs.
  ASSIGN_OR_RETURN(r.body, protocol::ReceiveBodyToString(t, uint64_t{4} << 30, &r.sha1,
                                                         protocol::DigestRule::kOptional));
  return std::optional<Received>(std::move(r));
}

// Messages per MESSAGES_FETCH, and how many are requested ahead of the answer being read: the
// daemon answers in order and reads the files of a request ahead on several threads, so the
// round trip per message and the wait per cold file overlap. Large requests: at the end of
// each one the daemon's read-ahead drains.
constexpr size_t kFetchBatch = 512;
constexpr size_t kFetchAhead = 2 * kFetchBatch;

class Run {
 public:
  // first_run: the archive holds no run yet, so no message is in it (only this run's, which
  // added_ tracks) and the index need not be asked for each one.
  Run(Env* env, protocol::Transport& t, IndexDb& idx, const std::string& archive, ArchiveWriter& w,
      SnapshotStats& stats, bool first_run)
      : env_(env), t_(t), idx_(idx), archive_(archive), w_(w), stats_(stats),
        first_run_(first_run) {}

  // Adds a changed folder: its metadata and the messages the archive lacks. next_key: the next
  // changed folder ("" = none), whose FOLDER_FETCH goes out behind this folder's last message
  // request, so the daemon reads it while this folder's answers are still arriving.
  Status AddFolder(const protocol::FolderState& fs, const std::string& next_key,
                   const SeenState& prev, SeenState* next) {
    Status last;
    const uint64_t no_guid_before = stats_.messages_without_guid;
    for (int attempt = 0; attempt < 3; ++attempt) {
      ASSIGN_OR_RETURN(FolderFiles metas, TakeFolder(fs.folder_key));
      if (!metas) return Status::Ok();  // vanished since USER_STATE: the next run sees it
      stats_.messages_without_guid = no_guid_before;  // counted again for this reading
      map_ = GuidMap{};
      last = AddMessages(fs, *metas, next_key);
      if (last.code() == Code::kNotFound) continue;  // expunged underfoot: read the folder again
      RETURN_IF_ERROR(last);
      return AddMetadata(fs, *metas, prev, next);
    }
    return AbortedError("folder " + fs.intname + " keeps changing underfoot or its slot lacks a "
                        "message its index lists; retry later (" + last.message() + ")");
  }

  // The folder's files: from the FOLDER_FETCH sent ahead for it, or fetched now (after reading
  // any answer sent ahead for another folder, which comes first on the stream).
  Result<FolderFiles> TakeFolder(const std::string& key) {
    if (ahead_ && ahead_->key == key) {
      RETURN_IF_ERROR(ReceiveAhead());
      FolderFiles out = std::move(ahead_->files);
      ahead_.reset();
      return out;
    }
    RETURN_IF_ERROR(ReceiveAhead());
    RETURN_IF_ERROR(t_.Send(protocol::kFolderFetch, protocol::EncodeString(key)));
    return ReceiveFolder(t_);
  }

  Status SendAhead(const std::string& key) {
    if (key.empty() || ahead_) return Status::Ok();
    RETURN_IF_ERROR(t_.Send(protocol::kFolderFetch, protocol::EncodeString(key)));
    ahead_ = Ahead{key, false, {}};
    return Status::Ok();
  }

  Status ReceiveAhead() {
    if (!ahead_ || ahead_->received) return Status::Ok();
    ASSIGN_OR_RETURN(ahead_->files, ReceiveFolder(t_));
    ahead_->received = true;
    return Status::Ok();
  }

  Status AddMessages(const protocol::FolderState& fs, const std::vector<MetaFile>& metas,
                     const std::string& next_key) {
    std::vector<cyrus::IndexRecord> want;
    GuidSet queued;
    std::optional<GuidMap> before;  // the archive's map, read at the first record without GUID
    for (const auto& m : metas) {
      if (m.info.name != "cyrus.index" && m.info.name != "cyrus.expunge") continue;
      ASSIGN_OR_RETURN(auto index, cyrus::ParseIndex(m.bytes, fs.intname + "/" + m.info.name));
      map_.uidvalidity = index.header.uidvalidity;
      for (auto& r : index.records) {
        if (!r.HasFile()) continue;
        if (!HasGuid(r)) {
          ASSIGN_OR_RETURN(bool known, KnownWithoutGuid(fs.folder_key, r, &before));
          if (!known) want.push_back(std::move(r));
          continue;
        }
        if (added_.contains(r.guid) || queued.contains(r.guid)) continue;
        if (!first_run_) {
          ASSIGN_OR_RETURN(bool have, idx_.HasFile(r.GuidHex()));
          if (have) continue;
        }
        queued.insert(r.guid);
        want.push_back(std::move(r));
      }
    }
    return FetchMessages(fs, want, next_key);
  }

  // A record without GUID: its body is fetched unless the archive's map already names it under
  // the same uidvalidity (a uid never holds another message while the uidvalidity stands).
  Result<bool> KnownWithoutGuid(const std::string& key, const cyrus::IndexRecord& r,
                                std::optional<GuidMap>* before) {
    ++stats_.messages_without_guid;
    if (first_run_) return false;
    if (!*before) {
      ASSIGN_OR_RETURN(GuidMap m, LoadGuidMap(env_, idx_, archive_, key));
      *before = std::move(m);
    }
    auto it = (*before)->sha1.find(r.uid);
    if ((*before)->uidvalidity != map_.uidvalidity || it == (*before)->sha1.end()) return false;
    map_.sha1[r.uid] = it->second;
    return true;
  }

  // Pipelined: keeps up to kFetchAhead messages requested. After a failure that leaves the
  // stream in step (a vanished or changed message, an archive write error) the outstanding
  // answers are still read, so the connection stays usable; the first failure is returned.
  Status FetchMessages(const protocol::FolderState& fs, const std::vector<cyrus::IndexRecord>& want,
                       const std::string& next_key) {
    size_t sent = 0;
    Status failed;
    if (want.empty()) return SendAhead(next_key);
    for (size_t done = 0; done < want.size(); ++done) {
      while (sent < want.size() && sent - done < kFetchAhead) {
        const size_t n = std::min(kFetchBatch, want.size() - sent);
        RETURN_IF_ERROR(RequestMessages(t_, fs.folder_key, want, sent, n));
        sent += n;
        if (sent == want.size()) RETURN_IF_ERROR(SendAhead(next_key));
      }
      ASSIGN_OR_RETURN(auto body, ReceiveMessage(t_));
      if (failed.ok()) failed = AddMessage(fs, want[done], body);
    }
    return failed;
  }

  Status AddMessage(const protocol::FolderState& fs, const cyrus::IndexRecord& r,
                    const std::optional<Received>& got) {
    if (!got) {
      return NotFoundError("message file of " + fs.intname + " uid " + std::to_string(r.uid) +
                           " is gone");
    }
    if (!HasGuid(r)) return AddWithoutGuid(fs, r, *got);
    const std::string guid = r.GuidHex();
    if (got->sha1 != guid) {
      return AbortedError("message changed underfoot: " + fs.intname + " uid " +
                          std::to_string(r.uid) + " does not match its GUID " + guid);
    }
    RETURN_IF_ERROR(w_.AddVerifiedFile("files/" + guid, got->body, guid, r.internaldate));
    added_.insert(r.guid);
    ++stats_.messages_added;
    stats_.bytes_added += got->body.size();
    return Status::Ok();
  }

  // No GUID to check the body against, only the size its index record gives; it is stored under
  // its own SHA-1, once.
  Status AddWithoutGuid(const protocol::FolderState& fs, const cyrus::IndexRecord& r,
                        const Received& got) {
    if (got.body.size() != r.size) {
      return AbortedError("message changed underfoot: " + fs.intname + " uid " +
                          std::to_string(r.uid) + " is " + std::to_string(got.body.size()) +
                          " bytes, its index record says " + std::to_string(r.size));
    }
    map_.sha1[r.uid] = got.sha1;
    const Guid g = GuidFromHex(got.sha1);
    if (added_.contains(g)) return Status::Ok();
    if (!first_run_) {
      ASSIGN_OR_RETURN(bool have, idx_.HasFile(got.sha1));
      if (have) return Status::Ok();
    }
    RETURN_IF_ERROR(w_.AddVerifiedFile("files/" + got.sha1, got.body, got.sha1, r.internaldate));
    added_.insert(g);
    ++stats_.messages_added;
    stats_.bytes_added += got.body.size();
    return Status::Ok();
  }

  // The folder's guid map, when it differs from the archive's latest (an empty one replaces a
  // map that no longer applies, so it keeps no body alive through compaction).
  Status AddGuidMap(const std::string& key, int64_t mtime) {
    if (map_.sha1.empty() && first_run_) return Status::Ok();
    const std::string name = GuidMapName(key);
    ASSIGN_OR_RETURN(auto latest, idx_.Latest(name));
    if (map_.sha1.empty() && !latest) return Status::Ok();
    const std::string text = EncodeGuidMap(map_);
    const std::string sha1 = Sha1Hex(text);
    if (latest && latest->sha1 == sha1) return Status::Ok();
    return w_.AddVerifiedFile(name, text, sha1, mtime);
  }

  Status AddMetadata(const protocol::FolderState& fs, const std::vector<MetaFile>& metas,
                     const SeenState& prev, SeenState* next) {
    auto& seen = next->folders[fs.folder_key];
    seen.intname = fs.intname;
    auto old = prev.folders.find(fs.folder_key);
    for (const auto& m : metas) {
      auto tuple = TupleVec(m.info.stat);
      seen.files[m.info.name] = tuple;
      bool same = old != prev.folders.end() && old->second.files.count(m.info.name) &&
                  old->second.files.at(m.info.name) == tuple;
      if (same) continue;
      const std::string name = "folders/" + fs.folder_key + "/" + m.info.name;
      // A file copied again with the same content (a replica reinstalls what it copied within
      // the racy window) costs no archive bytes.
      ASSIGN_OR_RETURN(auto latest, idx_.Latest(name));
      if (!latest) {
        RETURN_IF_ERROR(w_.AddFile(name, m.bytes, m.info.stat.mtime_ns / 1'000'000'000));
        continue;
      }
      const std::string sha1 = Sha1Hex(m.bytes);
      if (latest->sha1 == sha1) continue;
      // Hashed once: the writer records this SHA-1 instead of computing it again.
      RETURN_IF_ERROR(
          w_.AddVerifiedFile(name, m.bytes, sha1, m.info.stat.mtime_ns / 1'000'000'000));
    }
    RETURN_IF_ERROR(AddGuidMap(fs.folder_key, env_->NowNanos() / 1'000'000'000));
    ++stats_.folders_fetched;
    return Status::Ok();
  }

 private:
  Env* env_;
  protocol::Transport& t_;
  IndexDb& idx_;
  const std::string& archive_;
  ArchiveWriter& w_;
  SnapshotStats& stats_;
  const bool first_run_;
  GuidSet added_;  // hashed: probed for every record of every index
  GuidMap map_;    // the folder being added: its records without GUID
  // A FOLDER_FETCH sent ahead: its answer follows the answers to every request sent before it.
  struct Ahead {
    std::string key;
    bool received = false;
    FolderFiles files;
  };
  std::optional<Ahead> ahead_;
};

Status AddUserFiles(protocol::Transport& t, ArchiveWriter& w, IndexDb& idx,
                    const protocol::UserState& st,
                    const SeenState& prev, SeenState* next, SnapshotStats* stats) {
  for (const auto& uf : st.user_files) {
    auto tuple = TupleVec(uf.stat);
    next->user_files[uf.name] = tuple;
    auto it = prev.user_files.find(uf.name);
    if (it != prev.user_files.end() && it->second == tuple) continue;
    int64_t mtime = uf.stat.mtime_ns / 1'000'000'000;
    if (uf.kind == protocol::EntryKind::kSymlink) {
      RETURN_IF_ERROR(w.AddSymlink(uf.name, uf.target, mtime));
    } else {
      RETURN_IF_ERROR(t.Send(protocol::kFileFetch, protocol::EncodePath(uf.path)));
      ASSIGN_OR_RETURN(protocol::Frame f, t.Receive());
      if (f.type == protocol::kAbsent) {
        next->user_files.erase(uf.name);
        continue;
      }
      if (f.type != protocol::kMetaFile) return CorruptionError("unexpected frame in FILE_FETCH");
      ASSIGN_OR_RETURN(std::string body, protocol::ReceiveBodyToString(t, uint64_t{4} << 30));
      ASSIGN_OR_RETURN(auto latest, idx.Latest(uf.name));
      if (latest && latest->sha1 == Sha1Hex(body)) continue;
      RETURN_IF_ERROR(w.AddFile(uf.name, body, mtime));
    }
    ++stats->user_files;
  }
  return Status::Ok();
}

// Names: a new or renamed folder gets a link to its uniqueid; a name no folder holds any more
// gets a tombstone link to the empty file.
Status AddLinks(ArchiveWriter& w, const protocol::UserState& st, const SeenState& prev,
                int64_t now, SnapshotStats* stats) {
  std::set<std::string> names_now;
  for (const auto& fs : st.folders) names_now.insert(fs.intname);
  for (const auto& fs : st.folders) {
    auto it = prev.folders.find(fs.folder_key);
    if (it == prev.folders.end() || it->second.intname != fs.intname) {
      RETURN_IF_ERROR(w.AddSymlink(LinkName(fs.intname), fs.folder_key, now));
    }
  }
  std::set<std::string> keys_now;
  for (const auto& fs : st.folders) keys_now.insert(fs.folder_key);
  for (const auto& [key, f] : prev.folders) {
    if (names_now.count(f.intname)) continue;
    RETURN_IF_ERROR(w.AddSymlink(LinkName(f.intname), kTombstoneTarget, now));
    if (!keys_now.count(key)) ++stats->folders_removed;
  }
  return Status::Ok();
}

bool AnythingChanged(const protocol::UserState& st, const SeenState& prev) {
  if (st.folders.size() != prev.folders.size()) return true;
  for (const auto& fs : st.folders) {
    if (FolderChanged(fs, prev)) return true;
  }
  if (st.user_files.size() != prev.user_files.size()) return true;
  for (const auto& uf : st.user_files) {
    auto it = prev.user_files.find(uf.name);
    if (it == prev.user_files.end() || it->second != TupleVec(uf.stat)) return true;
  }
  return false;
}

}  // namespace

ArchivePaths PathsFor(const std::string& archive_dir, const std::string& user) {
  return {JoinPath(archive_dir, user + ".tar.gz"), JoinPath(archive_dir, user + ".index.sqlite")};
}

std::string LinkName(const std::string& intname) {
  std::string out = "imap/";
  for (char c : intname) {
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else {
      out += c;
    }
  }
  return out;
}

std::string IntnameFromLink(const std::string& name) {
  if (name.rfind("imap/", 0) != 0) return "";
  std::string out;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name.compare(i, 3, "%25") == 0) {
      out += '%';
      i += 2;
    } else if (name.compare(i, 3, "%2F") == 0) {
      out += '/';
      i += 2;
    } else {
      out += name[i];
    }
  }
  return out;
}

Result<protocol::UserState> FetchUserState(protocol::Transport& t, const std::string& user) {
  RETURN_IF_ERROR(t.Send(protocol::kUserState, protocol::EncodeString(user)));
  ASSIGN_OR_RETURN(protocol::Frame f, protocol::ReceiveExpect(t, protocol::kUserStateOk));
  return protocol::DecodeUserState(f.payload);
}

Result<SnapshotStats> SnapshotUser(Env* env, protocol::Transport& t, const std::string& user,
                                   const std::string& source, const ArchivePaths& paths,
                                   const WriterOptions& writer) {
  ASSIGN_OR_RETURN(auto state, FetchUserState(t, user));
  return SnapshotUserWithState(env, t, user, state, source, paths, writer);
}

Result<SnapshotStats> SnapshotUserWithState(Env* env, protocol::Transport& t,
                                            const std::string& user,
                                            const protocol::UserState& state,
                                            const std::string& source, const ArchivePaths& paths,
                                            const WriterOptions& writer) {
  SnapshotStats stats;
  stats.folders = state.folders.size();
  ASSIGN_OR_RETURN(auto idx, OpenIndexForArchive(env, paths.archive, paths.index));
  ASSIGN_OR_RETURN(SeenState prev, LoadPrevious(env, *idx, paths));
  ASSIGN_OR_RETURN(std::vector<RunInfo> runs_before, idx->Runs());
  if (!AnythingChanged(state, prev)) {
    stats.unchanged = true;
    return stats;
  }
  int64_t now = env->NowNanos() / 1'000'000'000;
  ASSIGN_OR_RETURN(auto w, ArchiveWriter::BeginRun(env, paths.archive, idx.get(),
                                                   RunInfo{0, now, 0, source, user}, writer));
  SeenState next;
  next.folders = {};
  Run run(env, t, *idx, paths.archive, *w, stats, runs_before.empty());
  std::vector<const protocol::FolderState*> changed;
  for (const auto& fs : state.folders) {
    if (FolderChanged(fs, prev)) {
      changed.push_back(&fs);
    } else {
      next.folders[fs.folder_key] = prev.folders.at(fs.folder_key);
    }
  }
  for (size_t i = 0; i < changed.size(); ++i) {
    const std::string next_key = i + 1 < changed.size() ? changed[i + 1]->folder_key : "";
    RETURN_IF_ERROR(run.AddFolder(*changed[i], next_key, prev, &next));
  }
  RETURN_IF_ERROR(AddLinks(*w, state, prev, now, &stats));
  RETURN_IF_ERROR(AddUserFiles(t, *w, *idx, state, prev, &next, &stats));
  RETURN_IF_ERROR(w->AddFile(kStateName, DumpState(next), now));
  ASSIGN_OR_RETURN(RunInfo done, w->Commit());
  stats.run_id = done.run_id;
  return stats;
}

}  // namespace cyrsync::snapshot
