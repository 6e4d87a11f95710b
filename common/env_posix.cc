// PosixEnv: the only place that calls open(2), stat(2), readdir(3) and friends.
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "common/env.h"

namespace cyrsync {
namespace {

FileStat FromStat(const struct stat& st) {
  FileStat f;
  f.size = static_cast<uint64_t>(st.st_size);
  f.ino = st.st_ino;
  f.dev = st.st_dev;
  f.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  f.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec;
  f.mode = st.st_mode;
  f.uid = st.st_uid;
  f.gid = st.st_gid;
  f.nlink = st.st_nlink;
  return f;
}

Status FcntlLock(int fd, short type, const std::string& path) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  while (fcntl(fd, F_SETLKW, &fl) < 0) {
    if (errno != EINTR) return PosixError("lock " + path, errno);
  }
  return Status::Ok();
}

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixReadableFile() override { ::close(fd_); }
  Result<size_t> ReadAt(uint64_t offset, std::span<char> out) override {
    while (true) {
      ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return PosixError("read " + path_, errno);
    }
  }
  Result<FileStat> Stat() override {
    struct stat st;
    if (::fstat(fd_, &st) < 0) return PosixError("fstat " + path_, errno);
    return FromStat(st);
  }
  Status Lock(LockMode mode) override {
    return FcntlLock(fd_, mode == LockMode::kShared ? F_RDLCK : F_WRLCK, path_);
  }
  const std::string& path() const override { return path_; }
  int fd() const override { return fd_; }

 private:
  int fd_;
  std::string path_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override { (void)Close(); }
  Status Append(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError("write " + path_, errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  }
  Status Sync() override {
    if (::fdatasync(fd_) < 0) return PosixError("fsync " + path_, errno);
    return Status::Ok();
  }
  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc < 0) return PosixError("close " + path_, errno);
    return Status::Ok();
  }
  Status Chown(uint32_t uid, uint32_t gid) override {
    if (::fchown(fd_, uid, gid) < 0) return PosixError("chown " + path_, errno);
    return Status::Ok();
  }
  const std::string& path() const override { return path_; }

 private:
  int fd_;
  std::string path_;
};

// Process-wide registry of lock files: fcntl locks are per process and vanish on any close() of
// the file, so every holder of one path shares one descriptor; an in-process rwlock orders the
// threads of this process among themselves.
struct LockEntry {
  int fd = -1;
  int holders = 0;
  std::shared_mutex rw;
};

class LockRegistry {
 public:
  static LockRegistry& Get() {
    static LockRegistry r;
    return r;
  }
  std::mutex mu;
  std::map<std::string, std::shared_ptr<LockEntry>> entries;
};

class PosixFileLock final : public FileLock {
 public:
  PosixFileLock(std::string path, std::shared_ptr<LockEntry> e, LockMode mode)
      : path_(std::move(path)), e_(std::move(e)), mode_(mode) {}
  ~PosixFileLock() override {
    auto& reg = LockRegistry::Get();
    {
      std::lock_guard g(reg.mu);
      if (--e_->holders == 0) {
        struct flock fl {};
        fl.l_type = F_UNLCK;
        fl.l_whence = SEEK_SET;
        fcntl(e_->fd, F_SETLK, &fl);
        ::close(e_->fd);
        e_->fd = -1;
        reg.entries.erase(path_);
      }
    }
    if (mode_ == LockMode::kShared) {
      e_->rw.unlock_shared();
    } else {
      e_->rw.unlock();
    }
  }

 private:
  std::string path_;
  std::shared_ptr<LockEntry> e_;
  LockMode mode_;
};

// Opens path read-only (plus flags) and applies sync (fsync, syncfs) to the descriptor.
Status SyncThrough(const std::string& path, int flags, int (*sync)(int), const char* what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | flags);
  if (fd < 0) return PosixError("open " + path, errno);
  int rc = sync(fd);
  int err = errno;
  ::close(fd);
  if (rc < 0) return PosixError(what + path, err);
  return Status::Ok();
}

class PosixEnv final : public Env {
 public:
  Result<FileStat> Stat(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) return PosixError("stat " + path, errno);
    return FromStat(st);
  }

  std::vector<Result<FileStat>> StatInDir(const std::string& dir,
                                          std::span<const std::string> names) override {
    int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    const int open_errno = fd < 0 ? errno : 0;
    std::vector<Result<FileStat>> out;
    out.reserve(names.size());
    for (const auto& n : names) {
      struct stat st;
      if (fd < 0) {
        out.push_back(PosixError("stat " + dir + "/" + n, open_errno));
      } else if (::fstatat(fd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        out.push_back(PosixError("stat " + dir + "/" + n, errno));
      } else {
        out.push_back(FromStat(st));
      }
    }
    if (fd >= 0) ::close(fd);
    return out;
  }

  Result<FileStat> StatBeneath(const std::string& root, std::string_view rel) override {
    if (!openat2_works_.load(std::memory_order_relaxed)) return Env::StatBeneath(root, rel);
    // O_PATH | O_NOFOLLOW: a symlink as the last component is opened itself, as lstat sees it.
    struct open_how how {};
    how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH;
    int dir = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return Env::StatBeneath(root, rel);
    const std::string r(rel);
    long fd = ::syscall(SYS_openat2, dir, r.c_str(), &how, sizeof how);
    const int err = fd < 0 ? errno : 0;
    ::close(dir);
    if (fd < 0) {
      if (err == ENOSYS || err == EPERM) openat2_works_ = false;  // old kernel, seccomp
      // ENOENT, ENOTDIR: as the lstat of that component reports. ELOOP (a symlink on the way)
      // and anything unusual: the per-component walk names the culprit.
      if (err == ENOENT || err == ENOTDIR) return PosixError("stat " + JoinPath(root, rel), err);
      return Env::StatBeneath(root, rel);
    }
    struct stat st;
    const int rc = ::fstat(static_cast<int>(fd), &st);
    const int ferr = errno;
    ::close(static_cast<int>(fd));
    if (rc < 0) return PosixError("stat " + JoinPath(root, rel), ferr);
    return FromStat(st);
  }

  Result<std::vector<DirEntry>> ListDir(const std::string& path) override {
    std::vector<DirEntry> out;
    RETURN_IF_ERROR(ScanDir(path, [&out](std::string_view name, EntryType type) {
      out.push_back({std::string(name), type});
    }));
    return out;
  }

  Status ScanDir(const std::string& path,
                 const std::function<void(std::string_view, EntryType)>& fn) override {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return PosixError("opendir " + path, errno);
    return ReadDirStream(d, path, fn);
  }

  // Reads the open directory d (at path) to its end and closes it.
  Status ReadDirStream(DIR* d, const std::string& path,
                       const std::function<void(std::string_view, EntryType)>& fn) {
    errno = 0;
    while (struct dirent* de = ::readdir(d)) {
      std::string_view name = de->d_name;
      if (name != "." && name != "..") fn(name, TypeOf(path, de));
      errno = 0;
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return PosixError("readdir " + path, err);
    return Status::Ok();
  }

  Status ScanDirBeneath(const std::string& root, std::string_view rel,
                        const std::function<void(std::string_view, EntryType)>& fn) override {
    if (!openat2_works_.load(std::memory_order_relaxed)) return Env::ScanDirBeneath(root, rel, fn);
    struct open_how how {};
    how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH;
    int dir = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return Env::ScanDirBeneath(root, rel, fn);
    const std::string r(rel);
    long fd = ::syscall(SYS_openat2, dir, r.c_str(), &how, sizeof how);
    const int err = fd < 0 ? errno : 0;
    ::close(dir);
    if (fd < 0) {
      if (err == ENOSYS || err == EPERM) openat2_works_ = false;
      // ENOENT: absent. Anything else (a symlink on the way, not a directory): the default names
      // the culprit as StatBeneath does.
      if (err == ENOENT) return PosixError("opendir " + JoinPath(root, rel), err);
      return Env::ScanDirBeneath(root, rel, fn);
    }
    DIR* d = ::fdopendir(static_cast<int>(fd));
    if (d == nullptr) {
      const int ferr = errno;
      ::close(static_cast<int>(fd));
      return PosixError("opendir " + JoinPath(root, rel), ferr);
    }
    return ReadDirStream(d, JoinPath(root, rel), fn);
  }

  // O_NOATIME: a sync or a backup reading a spool must not dirty every inode it reads (relatime
  // still writes a file's atime on its first read after a change). Only the file's owner or
  // CAP_FOWNER may ask for it; anyone else gets EPERM and the file is opened plainly.
  Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& path) override {
    constexpr int kFlags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW;
    int fd = ::open(path.c_str(), kFlags | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), kFlags);
    if (fd < 0) return PosixError("open " + path, errno);
    return std::unique_ptr<ReadableFile>(new PosixReadableFile(fd, path));
  }

  Result<std::unique_ptr<WritableFile>> NewWritable(const std::string& path,
                                                    uint32_t mode) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return PosixError("create " + path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
  }

  Result<std::unique_ptr<WritableFile>> NewAppendable(const std::string& path,
                                                      uint32_t mode) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return PosixError("open for append " + path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
  }

  Status Truncate(const std::string& path, uint64_t size) override {
    while (::truncate(path.c_str(), static_cast<off_t>(size)) < 0) {
      if (errno != EINTR) return PosixError("truncate " + path, errno);
    }
    return Status::Ok();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) < 0) {
      return PosixError("rename " + from + " -> " + to, errno);
    }
    return Status::Ok();
  }
  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) < 0) return PosixError("unlink " + path, errno);
    return Status::Ok();
  }
  Status RemoveDir(const std::string& path) override {
    if (::rmdir(path.c_str()) < 0) return PosixError("rmdir " + path, errno);
    return Status::Ok();
  }
  Status MakeDir(const std::string& path, uint32_t mode) override {
    if (::mkdir(path.c_str(), mode) < 0 && errno != EEXIST) {
      return PosixError("mkdir " + path, errno);
    }
    return Status::Ok();
  }
  Status SyncDir(const std::string& path) override {
    return SyncThrough(path, O_DIRECTORY, ::fsync, "fsync dir ");
  }
  Status SyncFileSystem(const std::string& path) override {
    return SyncThrough(path, 0, ::syncfs, "syncfs ");
  }
  Status Link(const std::string& existing, const std::string& path) override {
    if (::link(existing.c_str(), path.c_str()) < 0) {
      return PosixError("link " + existing + " -> " + path, errno);
    }
    return Status::Ok();
  }
  Status Symlink(const std::string& target, const std::string& path) override {
    if (::symlink(target.c_str(), path.c_str()) < 0) return PosixError("symlink " + path, errno);
    return Status::Ok();
  }
  Result<std::string> ReadLink(const std::string& path) override {
    char buf[4096];
    ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf));
    if (n < 0) return PosixError("readlink " + path, errno);
    return std::string(buf, static_cast<size_t>(n));
  }
  Status Chown(const std::string& path, uint32_t uid, uint32_t gid) override {
    if (::lchown(path.c_str(), uid, gid) < 0) return PosixError("chown " + path, errno);
    return Status::Ok();
  }
  Status SetMtime(const std::string& path, int64_t mtime_ns) override {
    struct timespec ts[2];
    ts[0].tv_sec = 0;
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_sec = mtime_ns / 1000000000;
    ts[1].tv_nsec = mtime_ns % 1000000000;
    if (::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) < 0) {
      return PosixError("utimensat " + path, errno);
    }
    return Status::Ok();
  }

  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path, LockMode mode, bool create,
                                             const Owner& owner) override {
    auto& reg = LockRegistry::Get();
    std::shared_ptr<LockEntry> e;
    {
      std::lock_guard g(reg.mu);
      auto& slot = reg.entries[path];
      if (!slot) slot = std::make_shared<LockEntry>();
      e = slot;
      // Count this caller before waiting so the entry outlives a concurrent release.
      ++e->holders;
    }
    if (mode == LockMode::kShared) {
      e->rw.lock_shared();
    } else {
      e->rw.lock();
    }
    auto lock = std::make_unique<PosixFileLock>(path, e, mode);
    std::lock_guard g(reg.mu);
    if (e->fd < 0) {
      RETURN_IF_ERROR(OpenLockFd(path, create, owner, &e->fd));
      // The first holder of this process takes the fcntl lock for everyone in the process. A
      // later exclusive holder can only get here after every shared holder has left.
      RETURN_IF_ERROR(FcntlLock(e->fd, mode == LockMode::kShared ? F_RDLCK : F_WRLCK, path));
    }
    return std::unique_ptr<FileLock>(std::move(lock));
  }

  int64_t NowNanos() override {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
  }

 private:
  std::atomic<bool> openat2_works_{true};  // false after ENOSYS/EPERM: the lstat walk instead
  EntryType TypeOf(const std::string& dir, const struct dirent* de) {
    switch (de->d_type) {
      case DT_REG: return EntryType::kFile;
      case DT_DIR: return EntryType::kDir;
      case DT_LNK: return EntryType::kSymlink;
      case DT_UNKNOWN: break;
      default: return EntryType::kOther;
    }
    struct stat st;
    if (::lstat(JoinPath(dir, de->d_name).c_str(), &st) < 0) return EntryType::kOther;
    if (S_ISREG(st.st_mode)) return EntryType::kFile;
    if (S_ISDIR(st.st_mode)) return EntryType::kDir;
    if (S_ISLNK(st.st_mode)) return EntryType::kSymlink;
    return EntryType::kOther;
  }

  Status OpenLockFd(const std::string& path, bool create, const Owner& owner, int* fd_out) {
    int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW;
    int fd = ::open(path.c_str(), flags);
    if (fd < 0 && errno == ENOENT && create) {
      RETURN_IF_ERROR(MakeDirs(this, Dirname(path), 0755, owner));
      fd = ::open(path.c_str(), flags | O_CREAT, 0666);
      if (fd >= 0 && owner.set) {
        (void)::fchown(fd, owner.uid, owner.gid);
      }
    }
    if (fd < 0) return PosixError("open lock " + path, errno);
    *fd_out = fd;
    return Status::Ok();
  }
};

}  // namespace

Env* Env::Default() {
  static PosixEnv env;
  return &env;
}

}  // namespace cyrsync
