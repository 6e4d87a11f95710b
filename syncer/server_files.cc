#include "syncer/server_files.h"

#include <map>

#include "common/parallel.h"

namespace cyrsync::syncer {
namespace {

// dav.db also holds 3.6's sieve script registry (which script exists and is active).
constexpr const char* kUserSuffixes[] = {"seen",    "sub", "counters", "conversations",
                                         "mboxkey", "dav"};

// The path of an absolute file under configdirectory, if it is under it.
std::optional<cyrus::RootedPath> UnderConf(const cyrus::ImapdConf& conf, const std::string& abs) {
  std::string root = conf.configdirectory;
  if (abs.size() <= root.size() + 1 || abs.compare(0, root.size(), root) != 0 ||
      abs[root.size()] != '/') {
    return std::nullopt;
  }
  return cyrus::RootedPath{"configdirectory", abs.substr(root.size() + 1)};
}

void AddIfExists(const FolderContext& ctx, const cyrus::RootedPath& p, const std::string& owner,
                 std::vector<ServerFile>* out) {
  auto abs = cyrus::Resolve(*ctx.conf, p);
  if (!abs.ok()) return;
  auto st = ctx.env->Stat(*abs);
  if (st.ok()) out->push_back({p, owner, *st});
}

// AddIfExists for several files; those in one directory (a user's seen, sub, counters... files)
// cost one path walk together.
void AddAllIfExist(const FolderContext& ctx, const std::vector<cyrus::RootedPath>& paths,
                   const std::string& owner, std::vector<ServerFile>* out) {
  std::vector<std::string> abs;
  for (const auto& p : paths) {
    auto a = cyrus::Resolve(*ctx.conf, p);
    abs.push_back(a.ok() ? *a : std::string());
  }
  const std::string dir = abs.empty() || abs[0].empty() ? std::string() : Dirname(abs[0]);
  bool one_dir = !dir.empty();
  std::vector<std::string> names;
  for (const auto& a : abs) {
    one_dir = one_dir && !a.empty() && Dirname(a) == dir;
    names.push_back(a.empty() ? std::string() : Basename(a));
  }
  if (!one_dir) {
    for (const auto& p : paths) AddIfExists(ctx, p, owner, out);
    return;
  }
  auto st = ctx.env->StatInDir(dir, names);
  for (size_t i = 0; i < paths.size(); ++i) {
    if (st[i].ok()) out->push_back({paths[i], owner, *st[i]});
  }
}

// Adds every regular file and symlink directly inside dir (a sieve or quota directory).
void AddDirFiles(const FolderContext& ctx, const cyrus::RootedPath& dir, const std::string& owner,
                 int depth, std::vector<ServerFile>* out) {
  auto abs = cyrus::Resolve(*ctx.conf, dir);
  if (!abs.ok()) return;
  auto ls = ctx.env->ListDir(*abs);
  if (!ls.ok()) return;
  for (const auto& e : *ls) {
    cyrus::RootedPath child{dir.root, dir.rel.empty() ? e.name : dir.rel + "/" + e.name};
    if (e.type == EntryType::kFile || e.type == EntryType::kSymlink) {
      if (e.name.find(".cyrsync-tmp") == std::string::npos && e.name.find(".NEW") == std::string::npos) {
        out->push_back({child, owner, std::nullopt});
      }
    } else if (e.type == EntryType::kDir && depth > 0) {
      AddDirFiles(ctx, child, owner, depth - 1, out);
    }
  }
}

// Internal name of a user's INBOX: [domain!]user.<localpart>, a '.' in the localpart as '^'.
std::string InboxIntname(const std::string& userid) {
  std::string local = userid, domain;
  if (auto at = userid.find('@'); at != std::string::npos) {
    local = userid.substr(0, at);
    domain = userid.substr(at + 1);
  }
  for (auto& c : local) {
    if (c == '.') c = '^';
  }
  return (domain.empty() ? "" : domain + "!") + "user." + local;
}

std::map<std::string, const cyrus::MailboxEntry*> Inboxes(
    const std::vector<cyrus::MailboxEntry>& mailboxes) {
  std::map<std::string, const cyrus::MailboxEntry*> out;
  for (const auto& mb : mailboxes) {
    std::string owner = mb.Owner();
    if (!owner.empty() && mb.IsReal() && mb.intname == InboxIntname(owner)) out[owner] = &mb;
  }
  return out;
}

}  // namespace

std::vector<ServerFile> ListServerFiles(const FolderContext& ctx,
                                        const std::vector<cyrus::MailboxEntry>& mailboxes,
                                        const std::set<std::string>& users, bool all_users,
                                        int threads) {
  std::vector<ServerFile> out;
  const auto& conf = *ctx.conf;
  if (all_users) {
    AddIfExists(ctx, {"configdirectory", "annotations.db"}, "", &out);
    AddDirFiles(ctx, {"configdirectory", "quota"}, "", 1, &out);
  }
  auto inboxes = Inboxes(mailboxes);
  const std::vector<std::string> list(users.begin(), users.end());
  std::vector<std::vector<ServerFile>> per_user(list.size());
  ParallelFor(list.size(), threads, [&](size_t i) {
    const std::string& user = list[i];
    auto it = inboxes.find(user);
    const cyrus::MailboxEntry* inbox = it == inboxes.end() ? nullptr : it->second;
    std::vector<cyrus::RootedPath> files;
    for (const char* suffix : kUserSuffixes) files.push_back(cyrus::UserFile(conf, user, inbox, suffix));
    AddAllIfExist(ctx, files, user, &per_user[i]);
    if (!conf.sievedir.empty()) {
      AddDirFiles(ctx, cyrus::UserSieveDir(conf, user, inbox), user, 0, &per_user[i]);
    }
    if (!all_users) AddIfExists(ctx, cyrus::QuotaFile(conf, "user." + user), user, &per_user[i]);
  });
  for (auto& v : per_user) {
    for (auto& f : v) out.push_back(std::move(f));
  }
  // mailboxes.db last: once it lists a folder, the annotations, quota and user files that go
  // with it are already in place (a pass killed in between leaves no listed folder without its
  // annotations.db entries).
  if (all_users) {
    if (auto p = UnderConf(conf, conf.mboxlist_db_path)) AddIfExists(ctx, *p, "", &out);
  }
  return out;
}

namespace {

bool InScope(const std::string& owner, const std::set<std::string>& users, bool all_users) {
  return all_users || (!owner.empty() && users.count(owner));
}

// Copies one file (or symlink) if it differs from the replica's installed copy.
Result<bool> CopyIfChanged(protocol::Transport& t, const FolderContext& ctx, const ServerFile& f,
                           const ReplicaView& view) {
  const ReplicaView::Entry* e = view.Find(f.path.root, f.path.rel);
  auto current = [&](const FileStat& st) {
    return e != nullptr && !e->unsettled && e->source == ToTuple(st);
  };
  if (f.listed && current(*f.listed)) return false;  // the common case: no second stat
  ASSIGN_OR_RETURN(std::string abs, cyrus::Resolve(*ctx.conf, f.path));
  ASSIGN_OR_RETURN(FileStat st, ctx.env->Stat(abs));
  if (current(st)) return false;
  protocol::FilePut put;
  put.path = ToWire(f.path);
  put.owner = f.owner;
  int64_t now = ctx.env->NowNanos();
  if (st.IsSymlink()) {
    put.kind = protocol::EntryKind::kSymlink;
    ASSIGN_OR_RETURN(put.target, ctx.env->ReadLink(abs));
    put.source = ToTuple(st);
    put.unsettled = st.ctime_ns > now - ctx.racy_window_ns;
    RETURN_IF_ERROR(t.Send(protocol::kFilePut, protocol::Encode(put)));
  } else {
    ASSIGN_OR_RETURN(std::string sig, SignatureIfWorthIt(t, ctx, ToWire(f.path)));
    ASSIGN_OR_RETURN(auto file, ctx.env->OpenRead(abs));
    // Cyrus's databases take fcntl locks on the file itself; a shared lock gives a committed view.
    RETURN_IF_ERROR(file->Lock(LockMode::kShared));
    ASSIGN_OR_RETURN(FileStat locked, file->Stat());
    put.kind = protocol::EntryKind::kFile;
    put.source = ToTuple(locked);
    put.size = locked.size;
    put.unsettled = locked.mtime_ns > now - ctx.racy_window_ns ||
                    locked.ctime_ns > now - ctx.racy_window_ns;
    RETURN_IF_ERROR(t.Send(protocol::kFilePut, protocol::Encode(put)));
    if (sig.empty()) {
      RETURN_IF_ERROR(protocol::SendFileBody(t, *file).status());
    } else {
      RETURN_IF_ERROR(protocol::SendFileDelta(t, *file, sig).status());
    }
  }
  RETURN_IF_ERROR(protocol::ExpectOk(t));
  return true;
}

}  // namespace

Result<ServerFileStats> SyncServerFiles(protocol::Transport& t, const FolderContext& ctx,
                                        const std::vector<ServerFile>& files,
                                        const ReplicaView& view,
                                        const std::set<std::string>& users, bool all_users) {
  ServerFileStats stats;
  std::set<protocol::WirePath> present;
  for (const auto& f : files) {
    present.insert(ToWire(f.path));
    auto copied = CopyIfChanged(t, ctx, f, view);
    if (!copied.ok()) {
      if (copied.error().code() == Code::kNotFound) continue;  // vanished: next pass
      return copied.error().WithContext(f.path.root + "/" + f.path.rel);
    }
    stats.copied += *copied;
  }
  std::vector<protocol::WirePath> gone;
  view.ForEach([&](std::string_view root, std::string_view rel, const ReplicaView::Entry& e,
                   std::string_view owner) {
    if (e.kind == protocol::EntryKind::kMeta) return;
    protocol::WirePath path{std::string(root), std::string(rel)};
    if (present.count(path) || !InScope(std::string(owner), users, all_users)) return;
    gone.push_back(std::move(path));
  });
  for (const auto& path : gone) {
    RETURN_IF_ERROR(t.Send(protocol::kFileRemove, protocol::EncodePath(path)));
    RETURN_IF_ERROR(protocol::ExpectOk(t));
    ++stats.removed;
  }
  return stats;
}

}  // namespace cyrsync::syncer
