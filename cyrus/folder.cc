#include "cyrus/folder.h"

#include "common/bytes.h"

namespace cyrsync::cyrus {

std::string FolderKey(const MailboxEntry& mb) {
  return mb.uniqueid.empty() ? mb.intname : mb.uniqueid;
}

Folder DescribeFolder(const ImapdConf& conf, const MailboxEntry& mb) {
  Folder f;
  f.mb = mb;
  f.key = FolderKey(mb);
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

// The first index version written by 2.4, which locks by name instead of through cyrus.header.
constexpr uint32_t kFirstNameLockedMinor = 12;

bool PreNameLocks(uint32_t minor) { return minor > 0 && minor < kFirstNameLockedMinor; }

// F_RDLCK on the file at abs, reopening when it was replaced between open and lock (Cyrus
// replaces these files by rename). *st gets its fstat under the lock.
Status LockShared(Env* env, const std::string& abs, std::unique_ptr<ReadableFile>* file,
                  FileStat* st) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    ASSIGN_OR_RETURN(*file, env->OpenRead(abs));
    RETURN_IF_ERROR((*file)->Lock(LockMode::kShared));
    ASSIGN_OR_RETURN(*st, (*file)->Stat());
    ASSIGN_OR_RETURN(FileStat now, env->Stat(abs));
    if (now.ino == st->ino) return Status::Ok();
    file->reset();
  }
  return AbortedError("keeps being replaced: " + abs);
}

// The minor version in an index header (offset 8); 0 when the file is too short to say.
Result<uint32_t> IndexMinor(ReadableFile& f) {
  char b[4];
  ASSIGN_OR_RETURN(size_t n, f.ReadAt(8, std::span<char>(b, 4)));
  if (n < 4) return 0u;
  return LoadBE32(std::string_view(b, 4), 0);
}

Result<uint32_t> PeekIndexMinor(Env* env, const std::string& abs) {
  ASSIGN_OR_RETURN(auto f, env->OpenRead(abs));
  return IndexMinor(*f);
}

// Header, index and expunge locks. Guesses the index version before locking; when the locked
// index turns out to be of the other kind (upgraded or replaced meanwhile) it starts over.
Status LockMetadata(Env* env, const ImapdConf& conf, const Folder& f, FolderReadLock* l) {
  ASSIGN_OR_RETURN(std::string index_abs, Resolve(conf, f.index));
  for (int attempt = 0; attempt < 5; ++attempt) {
    ASSIGN_OR_RETURN(uint32_t guess, PeekIndexMinor(env, index_abs));
    const bool old = PreNameLocks(guess);
    FileStat ignored;
    if (old) {
      ASSIGN_OR_RETURN(std::string header_abs, Resolve(conf, f.header));
      RETURN_IF_ERROR(LockShared(env, header_abs, &l->header, &ignored));
    }
    RETURN_IF_ERROR(LockShared(env, index_abs, &l->index, &l->index_st));
    ASSIGN_OR_RETURN(uint32_t minor, IndexMinor(*l->index));
    if (PreNameLocks(minor) != old) {
      l->index.reset();
      l->header.reset();
      continue;
    }
    if (!old) return Status::Ok();
    ASSIGN_OR_RETURN(std::string expunge_abs, Resolve(conf, f.expunge));
    Status st = LockShared(env, expunge_abs, &l->expunge, &ignored);
    if (st.ok() || st.code() == Code::kNotFound) return Status::Ok();
    return st;
  }
  return AbortedError("cyrus.index keeps changing version: " + index_abs);
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
  RETURN_IF_ERROR(LockMetadata(env, conf, f, l.get()));
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
