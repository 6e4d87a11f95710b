// Env: every disk access and clock read of cyrsync goes through this interface, so tests can count
// syscalls per path (CountingEnv) and inject faults. PosixEnv is thread-safe; so must wrappers be.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cyrsync {

struct FileStat {
  uint64_t size = 0;
  uint64_t ino = 0;
  uint64_t dev = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint32_t mode = 0;  // full st_mode
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t nlink = 0;
  bool IsDir() const;
  bool IsRegular() const;
  bool IsSymlink() const;
};

enum class EntryType : uint8_t { kFile, kDir, kSymlink, kOther };

struct DirEntry {
  std::string name;
  EntryType type;
};

enum class LockMode { kShared, kExclusive };

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to out.size() bytes at offset; returns the count, 0 at end of file.
  virtual Result<size_t> ReadAt(uint64_t offset, std::span<char> out) = 0;
  virtual Result<FileStat> Stat() = 0;  // fstat of the open file
  // Takes a whole-file fcntl lock on this descriptor (blocking). Shared locks need only read access.
  virtual Status Lock(LockMode mode) = 0;
  virtual const std::string& path() const = 0;
  // The descriptor, for a reader that batches reads through the kernel (common/read_ring.h);
  // -1 for a file that has none (test doubles). Owned by this object.
  virtual int fd() const { return -1; }
  // Reads the whole file (from offset 0 to end of file).
  Result<std::string> ReadAll();
};

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  virtual Status Sync() = 0;   // fdatasync
  virtual Status Close() = 0;  // idempotent
  virtual Status Chown(uint32_t uid, uint32_t gid) = 0;  // fchown of the open file
  virtual const std::string& path() const = 0;
};

// A held lock; released on destruction. Locks on the same path within one process are shared
// through a registry because fcntl locks belong to the process and die with any close() of the
// file.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

struct Owner {
  bool set = false;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  // lstat(2). kNotFound when absent.
  virtual Result<FileStat> Stat(const std::string& path) = 0;
  // lstat(2) of several paths below one directory, in the order of names (each kNotFound when
  // absent); a name may have several components ("uuid/cyrus.index"). Same results as
  // Stat(dir + "/" + name) for each name; PosixEnv walks the directory's path once (O_PATH)
  // instead of once per name. Wrappers get the per-name Stat calls.
  virtual std::vector<Result<FileStat>> StatInDir(const std::string& dir,
                                                  std::span<const std::string> names);
  // lstat(2) of root/rel, where no component of rel before the last may be a symlink:
  // kInvalidArgument naming the first one that is. A missing component (or one that is not a
  // directory) gives that lstat's error; every component before it was a real directory. rel is
  // relative and non-empty. PosixEnv resolves the whole path in one openat2(2)
  // (RESOLVE_NO_SYMLINKS) where the kernel has it; the default lstat()s each component.
  virtual Result<FileStat> StatBeneath(const std::string& root, std::string_view rel);
  // readdir(2) with d_type; "." and ".." are skipped. DT_UNKNOWN is resolved with lstat.
  virtual Result<std::vector<DirEntry>> ListDir(const std::string& path) = 0;
  // ListDir without collecting: fn sees each entry as readdir(2) returns it (name valid during
  // the call only). For walks over a million-file spool. The default calls ListDir.
  virtual Status ScanDir(const std::string& path,
                         const std::function<void(std::string_view, EntryType)>& fn);
  // ScanDir of root/rel, where no component of rel may be a symlink (kInvalidArgument naming
  // the first one that is, as StatBeneath). A missing directory is kNotFound. PosixEnv opens the
  // directory in one openat2(2) (RESOLVE_NO_SYMLINKS) and reads that descriptor: one path walk
  // instead of StatBeneath's and opendir's. The default calls StatBeneath, then ScanDir.
  virtual Status ScanDirBeneath(const std::string& root, std::string_view rel,
                                const std::function<void(std::string_view, EntryType)>& fn);
  virtual Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& path) = 0;
  // Creates or truncates path for writing with the given mode.
  virtual Result<std::unique_ptr<WritableFile>> NewWritable(const std::string& path,
                                                            uint32_t mode) = 0;
  // Opens path for appending (O_APPEND), creating it with mode when absent; existing bytes are
  // kept and every Append goes to the end of the file.
  virtual Result<std::unique_ptr<WritableFile>> NewAppendable(const std::string& path,
                                                              uint32_t mode) = 0;
  // truncate(2): cuts path to size bytes (or extends it with zeros). The new size is durable
  // only after a later Sync of a descriptor of that file.
  virtual Status Truncate(const std::string& path, uint64_t size) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;     // unlink; kNotFound if absent
  virtual Status RemoveDir(const std::string& path) = 0;  // rmdir
  virtual Status MakeDir(const std::string& path, uint32_t mode) = 0;  // ok if it exists
  virtual Status SyncDir(const std::string& path) = 0;
  // syncfs(2) of the filesystem holding path: one flush makes every file written there durable
  // (far cheaper than an fdatasync per file when many small files were written).
  virtual Status SyncFileSystem(const std::string& path) = 0;
  virtual Status Link(const std::string& existing, const std::string& path) = 0;
  virtual Status Symlink(const std::string& target, const std::string& path) = 0;
  virtual Result<std::string> ReadLink(const std::string& path) = 0;
  virtual Status Chown(const std::string& path, uint32_t uid, uint32_t gid) = 0;  // lchown
  virtual Status SetMtime(const std::string& path, int64_t mtime_ns) = 0;
  // Opens (creating it and its parent directories when create is set, owned by owner) and
  // fcntl-locks a lock file, as Cyrus's mboxname_lock does. Blocks until granted.
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path, LockMode mode,
                                                     bool create, const Owner& owner) = 0;
  virtual int64_t NowNanos() = 0;  // CLOCK_REALTIME

  static Env* Default();  // the process-wide PosixEnv
};

// Forwards everything to a target Env; subclasses override what they observe or break.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}
  Result<FileStat> Stat(const std::string& p) override { return target_->Stat(p); }
  Result<std::vector<DirEntry>> ListDir(const std::string& p) override {
    return target_->ListDir(p);
  }
  Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& p) override {
    return target_->OpenRead(p);
  }
  Result<std::unique_ptr<WritableFile>> NewWritable(const std::string& p, uint32_t m) override {
    return target_->NewWritable(p, m);
  }
  Result<std::unique_ptr<WritableFile>> NewAppendable(const std::string& p, uint32_t m) override {
    return target_->NewAppendable(p, m);
  }
  Status Truncate(const std::string& p, uint64_t size) override {
    return target_->Truncate(p, size);
  }
  Status Rename(const std::string& f, const std::string& t) override {
    return target_->Rename(f, t);
  }
  Status Remove(const std::string& p) override { return target_->Remove(p); }
  Status RemoveDir(const std::string& p) override { return target_->RemoveDir(p); }
  Status MakeDir(const std::string& p, uint32_t m) override { return target_->MakeDir(p, m); }
  Status SyncDir(const std::string& p) override { return target_->SyncDir(p); }
  Status SyncFileSystem(const std::string& p) override { return target_->SyncFileSystem(p); }
  Status Link(const std::string& e, const std::string& p) override {
    return target_->Link(e, p);
  }
  Status Symlink(const std::string& t, const std::string& p) override {
    return target_->Symlink(t, p);
  }
  Result<std::string> ReadLink(const std::string& p) override { return target_->ReadLink(p); }
  Status Chown(const std::string& p, uint32_t u, uint32_t g) override {
    return target_->Chown(p, u, g);
  }
  Status SetMtime(const std::string& p, int64_t t) override { return target_->SetMtime(p, t); }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& p, LockMode m, bool c,
                                             const Owner& o) override {
    return target_->LockFile(p, m, c, o);
  }
  int64_t NowNanos() override { return target_->NowNanos(); }

 protected:
  Env* target() const { return target_; }

 private:
  Env* target_;
};

// Reads a whole file through env. kNotFound when absent.
Result<std::string> ReadFileToString(Env* env, const std::string& path);

// Creates path and all missing parents (each owned by owner when set).
Status MakeDirs(Env* env, const std::string& path, uint32_t mode, const Owner& owner = {});

// Durability point. Writes data to "<path>.cyrsync-tmp", fsyncs it, sets owner/mode/mtime when
// given, renames it over path and fsyncs the directory. After a crash at any point, path holds
// either its old content or the new content, never a mix; a stray temp file may remain.
struct AtomicWriteOptions {
  uint32_t mode = 0600;
  Owner owner;
  int64_t mtime_ns = 0;  // 0: leave as written
  bool sync_dir = true;
};
Status AtomicWriteFile(Env* env, const std::string& path, std::string_view data,
                       const AtomicWriteOptions& opts);

// Joins path components with exactly one '/'.
std::string JoinPath(std::string_view a, std::string_view b);
std::string Dirname(std::string_view path);
std::string Basename(std::string_view path);

}  // namespace cyrsync
