// The daemon's read service (session mode "read"): consistent reads of this host's spool for a
// snapshot host. USER_STATE costs stats of each folder's cyrus.header and cyrus.index and of the
// user's files; FOLDER_FETCH streams a folder's cyrus.* files under Cyrus's own locks.
#include <ctime>

#include "cyrus/folder.h"
#include "cyrus/index.h"
#include "common/prefetch.h"
#include "replica/session.h"

namespace cyrsync::replica {
namespace {

using protocol::Frame;
using protocol::Transport;

protocol::StatTuple Tuple(const FileStat& st) { return {st.size, st.mtime_ns, st.ctime_ns, st.ino}; }

// A rooted path's stat, or nullopt when absent.
std::optional<FileStat> StatRooted(Store& s, const cyrus::RootedPath& p) {
  auto abs = cyrus::Resolve(s.conf(), p);
  if (!abs.ok()) return std::nullopt;
  auto st = s.env()->Stat(*abs);
  if (!st.ok()) return std::nullopt;
  return *st;
}

int64_t SyncedAt(Store& s, const std::string& user) {
  if (s.options().read_only) return static_cast<int64_t>(std::time(nullptr));
  int64_t best = 0;
  for (const auto& key : {"synced:" + user, std::string("synced:*")}) {
    auto v = s.manifest().GetMeta(key);
    if (v.ok() && *v) best = std::max<int64_t>(best, std::atoll((*v)->c_str()));
  }
  return best;
}

void AddUserFiles(Store& s, const std::string& user, const cyrus::MailboxEntry* inbox,
                  protocol::UserState* out) {
  const auto& conf = s.conf();
  for (const char* suffix : {"seen", "sub", "dav"}) {
    cyrus::RootedPath p = cyrus::UserFile(conf, user, inbox, suffix);
    if (auto st = StatRooted(s, p)) {
      out->user_files.push_back({std::string("user/") + suffix, {p.root, p.rel},
                                 protocol::EntryKind::kFile, Tuple(*st), ""});
    }
  }
  // The user's quota root (its limits and usage), where Cyrus keeps one file per root.
  if (inbox && conf.quota_db == "quotalegacy") {
    cyrus::RootedPath q = cyrus::QuotaFile(conf, inbox->intname);
    if (auto st = StatRooted(s, q)) {
      out->user_files.push_back({"user/quota", {q.root, q.rel}, protocol::EntryKind::kFile,
                                 Tuple(*st), ""});
    }
  }
  if (conf.sievedir.empty()) return;
  cyrus::RootedPath dir = cyrus::UserSieveDir(conf, user, inbox);
  auto abs = cyrus::Resolve(conf, dir);
  auto ls = abs.ok() ? s.env()->ListDir(*abs) : Result<std::vector<DirEntry>>(NotFoundError(""));
  if (!ls.ok()) return;
  for (const auto& e : *ls) {
    if (e.type != EntryType::kFile && e.type != EntryType::kSymlink) continue;
    std::string path = JoinPath(*abs, e.name);
    auto st = s.env()->Stat(path);
    if (!st.ok()) continue;
    protocol::StateFile f{"sieve/" + e.name, {dir.root, JoinPath(dir.rel, e.name)},
                          protocol::EntryKind::kFile, Tuple(*st), ""};
    if (st->IsSymlink()) {
      f.kind = protocol::EntryKind::kSymlink;
      f.target = s.env()->ReadLink(path).ok() ? *s.env()->ReadLink(path) : "";
    }
    out->user_files.push_back(std::move(f));
  }
}

}  // namespace

Status HandleUserState(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(std::string user, protocol::DecodeString(f.payload));
  ASSIGN_OR_RETURN(auto folders, s.FoldersOf(user));
  protocol::UserState out;
  out.synced_at = SyncedAt(s, user);
  const cyrus::MailboxEntry* inbox = nullptr;
  for (size_t i : folders.at) {
    const cyrus::MailboxEntry& mb = (*folders.list)[i];
    if (!inbox || mb.intname.size() < inbox->intname.size()) inbox = &mb;
    cyrus::Folder folder = cyrus::DescribeFolder(s.conf(), mb);
    auto idx = StatRooted(s, folder.index);
    auto hdr = StatRooted(s, folder.header);
    if (!idx || !hdr) continue;  // vanished or half-created: the next run sees it
    out.folders.push_back({folder.key, mb.intname, mb.mbtype,
                           {{"cyrus.header", {}, protocol::EntryKind::kFile, Tuple(*hdr), ""},
                            {"cyrus.index", {}, protocol::EntryKind::kFile, Tuple(*idx), ""}}});
  }
  AddUserFiles(s, user, inbox, &out);
  return t.Send(protocol::kUserStateOk, protocol::Encode(out));
}

Status HandleFolderFetch(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(std::string key, protocol::DecodeString(f.payload));
  auto folder = s.FolderByKey(key);
  if (!folder.ok()) return t.Send(protocol::kAbsent, "");
  Owner owner = s.options().owner.set ? s.options().owner : cyrus::SpoolOwner(s.env(), s.conf());
  auto locks = cyrus::LockFolderForRead(s.env(), s.conf(), *folder, owner);
  if (!locks.ok() && locks.error().code() == Code::kNotFound) return t.Send(protocol::kAbsent, "");
  RETURN_IF_ERROR(locks.status());
  ASSIGN_OR_RETURN(std::string index_bytes, (*locks)->index->ReadAll());
  ASSIGN_OR_RETURN(auto hdr, cyrus::ParseIndexHeader(index_bytes, (*locks)->index->path()));
  ASSIGN_OR_RETURN(auto metas, cyrus::OpenFolderMeta(s.env(), s.conf(), *folder, hdr.minor_version));
  for (auto& m : metas) {
    protocol::StateFile sf{Basename(m.path.rel), {}, protocol::EntryKind::kFile, Tuple(m.st), ""};
    RETURN_IF_ERROR(t.Send(protocol::kMetaFile, protocol::Encode(sf)));
    RETURN_IF_ERROR(protocol::SendFileBody(t, *m.file).status());
  }
  protocol::StateFile sf{"cyrus.index", {}, protocol::EntryKind::kFile, Tuple((*locks)->index_st), ""};
  RETURN_IF_ERROR(t.Send(protocol::kMetaFile, protocol::Encode(sf)));
  RETURN_IF_ERROR(protocol::SendBody(t, index_bytes));
  return t.Send(protocol::kOk, "");
}

Status HandleMessageFetch(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(auto req, protocol::DecodeMessageFetch(f.payload));
  auto folder = s.FolderByKey(req.folder_key);
  if (!folder.ok()) return t.Send(protocol::kAbsent, "");
  ASSIGN_OR_RETURN(std::string dir, cyrus::Resolve(s.conf(), req.archived ? folder->archive_dir
                                                                          : folder->data_dir));
  auto file = s.env()->OpenRead(JoinPath(dir, std::to_string(req.uid) + "."));
  if (!file.ok()) {
    if (file.error().code() == Code::kNotFound) return t.Send(protocol::kAbsent, "");
    return file.error();
  }
  RETURN_IF_ERROR(t.Send(protocol::kMessagePut,
                         protocol::Encode(protocol::MessagePut{req.uid, req.archived, 0})));
  return protocol::SendFileBody(t, **file).status();
}

Status HandleFileFetch(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(auto path, protocol::DecodePath(f.payload));
  ASSIGN_OR_RETURN(std::string abs, s.Resolve(path));
  auto file = s.env()->OpenRead(abs);
  if (!file.ok()) {
    if (file.error().code() == Code::kNotFound) return t.Send(protocol::kAbsent, "");
    return file.error();
  }
  RETURN_IF_ERROR((*file)->Lock(LockMode::kShared));
  RETURN_IF_ERROR(t.Send(protocol::kMetaFile, ""));
  return protocol::SendFileBody(t, **file).status();
}

// The answers go out in request order; the files are read ahead by a Prefetcher.
Status HandleMessagesFetch(Transport& t, Store& s, const Frame& f) {
  ASSIGN_OR_RETURN(auto req, protocol::DecodeMessagesFetch(f.payload));
  auto folder = s.FolderByKey(req.folder_key);
  if (!folder.ok()) {
    for (size_t i = 0; i < req.messages.size(); ++i) RETURN_IF_ERROR(t.Send(protocol::kAbsent, ""));
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(std::string data_dir, cyrus::Resolve(s.conf(), folder->data_dir));
  ASSIGN_OR_RETURN(std::string archive_dir, cyrus::Resolve(s.conf(), folder->archive_dir));
  std::vector<std::string> paths;
  for (const auto& [uid, archived] : req.messages) {
    paths.push_back(JoinPath(archived ? archive_dir : data_dir, std::to_string(uid) + "."));
  }
  Prefetcher ahead(s.env(), std::move(paths));
  for (size_t i = 0; i < req.messages.size(); ++i) {
    auto [uid, archived] = req.messages[i];
    Prefetcher::Item item = ahead.Take(i);
    if (item.status.code() == Code::kNotFound) {
      RETURN_IF_ERROR(t.Send(protocol::kAbsent, ""));
      continue;
    }
    RETURN_IF_ERROR(item.status);
    RETURN_IF_ERROR(t.Send(protocol::kMessagePut,
                           protocol::Encode(protocol::MessagePut{uid, archived, 0})));
    // No digest: the snapshot host checks each body against its GUID (protocol.md, version 2).
    if (item.large) {
      RETURN_IF_ERROR(protocol::SendFileBody(t, *item.large, protocol::Digest::kNone).status());
    } else {
      RETURN_IF_ERROR(protocol::SendBody(t, item.data, protocol::Digest::kNone));
    }
  }
  return Status::Ok();
}

}  // namespace cyrsync::replica
