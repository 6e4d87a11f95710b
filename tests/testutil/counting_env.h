// CountingEnv: an EnvWrapper that records every path it was asked to stat, list, open or lock.
// Tests use it to prove syscall budgets (an unchanged folder costs only its cyrus.* stats).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/env.h"

namespace cyrsync::testing {

class CountingEnv : public EnvWrapper {
 public:
  explicit CountingEnv(Env* target) : EnvWrapper(target) {}

  struct Op {
    std::string kind;  // stat, walk, list, open, write, lock, rename, remove
    std::string path;
  };

  Result<FileStat> Stat(const std::string& p) override {
    Record("stat", p);
    return EnvWrapper::Stat(p);
  }
  // Records the directory walk ("walk"), then one "stat" per name (Env's default).
  std::vector<Result<FileStat>> StatInDir(const std::string& dir,
                                          std::span<const std::string> names) override {
    Record("walk", dir);
    return Env::StatInDir(dir, names);
  }
  Result<std::vector<DirEntry>> ListDir(const std::string& p) override {
    Record("list", p);
    return EnvWrapper::ListDir(p);
  }
  Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& p) override {
    Record("open", p);
    return EnvWrapper::OpenRead(p);
  }
  Result<std::unique_ptr<WritableFile>> NewWritable(const std::string& p, uint32_t m) override {
    Record("write", p);
    return EnvWrapper::NewWritable(p, m);
  }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& p, LockMode m, bool c,
                                             const Owner& o) override {
    Record("lock", p);
    return EnvWrapper::LockFile(p, m, c, o);
  }

  std::vector<Op> ops() const {
    std::lock_guard g(mu_);
    return ops_;
  }
  void Clear() {
    std::lock_guard g(mu_);
    ops_.clear();
  }
  size_t Count(const std::string& kind) const {
    std::lock_guard g(mu_);
    size_t n = 0;
    for (const auto& op : ops_) n += op.kind == kind;
    return n;
  }

 private:
  void Record(const char* kind, const std::string& p) {
    std::lock_guard g(mu_);
    ops_.push_back({kind, p});
  }
  mutable std::mutex mu_;
  std::vector<Op> ops_;
};

}  // namespace cyrsync::testing
