#include "cyrus/folder.h"

namespace cyrsync::cyrus {

Folder DescribeFolder(const ImapdConf& conf, const MailboxEntry& mb) {
  Folder f;
  f.mb = mb;
  f.key = mb.uniqueid.empty() ? mb.intname : mb.uniqueid;
  f.owner = mb.Owner();
  f.data_dir = DataDir(conf, mb);
  f.archive_dir = ArchiveDir(conf, mb);
  f.header = MetaPath(conf, mb, MetaFile::kHeader);
  f.index = MetaPath(conf, mb, MetaFile::kIndex);
  f.expunge = MetaPath(conf, mb, MetaFile::kExpunge);
  for (auto m : {MetaFile::kCache, MetaFile::kAnnotations}) {
    f.other_meta.push_back(MetaPath(conf, mb, m));
  }
  return f;
}

namespace {

Status LockIndex(Env* env, const std::string& abs, FolderReadLock* l) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    ASSIGN_OR_RETURN(l->index, env->OpenRead(abs));
    RETURN_IF_ERROR(l->index->Lock(LockMode::kShared));
    ASSIGN_OR_RETURN(l->index_st, l->index->Stat());
    ASSIGN_OR_RETURN(FileStat now, env->Stat(abs));
    if (now.ino == l->index_st.ino) return Status::Ok();
    l->index.reset();
  }
  return AbortedError("cyrus.index keeps being replaced: " + abs);
}

}  // namespace

Result<std::unique_ptr<FolderReadLock>> LockFolderForRead(Env* env, const ImapdConf& conf,
                                                          const Folder& f,
                                                          const Owner& lock_owner) {
  auto l = std::make_unique<FolderReadLock>();
  if (!f.owner.empty()) {
    ASSIGN_OR_RETURN(l->ns, env->LockFile(UserNamespaceLockPath(conf, f.owner),
                                          LockMode::kShared, true, lock_owner));
  }
  ASSIGN_OR_RETURN(l->name, env->LockFile(MailboxNameLockPath(conf, f.mb), LockMode::kShared,
                                          true, lock_owner));
  ASSIGN_OR_RETURN(std::string abs, Resolve(conf, f.index));
  RETURN_IF_ERROR(LockIndex(env, abs, l.get()));
  return l;
}

Result<std::vector<OpenMeta>> OpenFolderMeta(Env* env, const ImapdConf& conf, const Folder& f,
                                             uint32_t index_minor) {
  std::vector<RootedPath> paths = {f.header};
  paths.insert(paths.end(), f.other_meta.begin(), f.other_meta.end());
  if (index_minor > 0 && index_minor < 12) paths.push_back(f.expunge);
  std::vector<OpenMeta> out;
  for (const auto& p : paths) {
    ASSIGN_OR_RETURN(std::string abs, Resolve(conf, p));
    auto file = env->OpenRead(abs);
    if (!file.ok()) {
      if (file.error().code() == Code::kNotFound && !(p == f.header)) continue;
      return file.error();
    }
    ASSIGN_OR_RETURN(FileStat st, (*file)->Stat());
    out.push_back({p, std::move(*file), st});
  }
  return out;
}

Owner SpoolOwner(Env* env, const ImapdConf& conf) {
  auto st = env->Stat(conf.configdirectory);
  if (!st.ok()) return {};
  return {true, st->uid, st->gid};
}

}  // namespace cyrsync::cyrus
