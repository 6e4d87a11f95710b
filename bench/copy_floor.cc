// The least work any tool must do to seed an empty replica of a spool on this host: copies each
// tree SRC to DST/<its base name> (DST must not exist) with --threads threads, each taking whole
// directories.
// Per source file: open + read + close; per destination file: open(O_CREAT|O_EXCL) + write +
// close. No temp names, no renames, no ownership, no fsync, no hashing, no network: none of the
// guarantees a replica needs, so a real copier can only be slower. sync_bench.py runs it beside
// the seeds as the floor of the ratio against rsync.
//
//   cyrsync_copy_floor [--threads N] SRC... DST
//
// Prints one key=value line: files, dirs, bytes, wall seconds, CPU seconds (all threads).
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Totals {
  std::atomic<uint64_t> files{0}, dirs{0}, bytes{0}, errors{0};
};

// A queued directory: its source and destination paths.
struct DirJob {
  std::string from, to;
};

// Directories still to copy; Take blocks until one is queued or every worker is idle.
class DirQueue {
 public:
  void Put(DirJob job) {
    std::lock_guard<std::mutex> l(mu_);
    todo_.push_back(std::move(job));
    cv_.notify_one();
  }
  bool Take(DirJob* job) {
    std::unique_lock<std::mutex> l(mu_);
    ++idle_;
    cv_.wait(l, [&] { return !todo_.empty() || idle_ == workers_; });
    if (todo_.empty()) {
      cv_.notify_all();
      return false;
    }
    --idle_;
    *job = std::move(todo_.back());
    todo_.pop_back();
    return true;
  }
  void SetWorkers(int n) { workers_ = n; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<DirJob> todo_;
  int idle_ = 0;
  int workers_ = 1;
};

bool CopyFile(const std::string& from, const std::string& to, std::vector<char>& buf,
              Totals& t) {
  int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return false;
  int out = open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) {
    close(in);
    return false;
  }
  bool ok = true;
  while (true) {
    ssize_t n = read(in, buf.data(), buf.size());
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    if (write(out, buf.data(), n) != n) {
      ok = false;
      break;
    }
    t.bytes += static_cast<uint64_t>(n);
  }
  close(in);
  return close(out) == 0 && ok;
}

void CopyDir(const DirJob& job, DirQueue& q, std::vector<char>& buf, Totals& t) {
  const std::string& from = job.from;
  const std::string& to = job.to;
  if (mkdir(to.c_str(), 0700) != 0 && errno != EEXIST) {
    ++t.errors;
    return;
  }
  ++t.dirs;
  DIR* d = opendir(from.c_str());
  if (!d) {
    ++t.errors;
    return;
  }
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    DirJob child{from + "/" + e->d_name, to + "/" + e->d_name};
    if (e->d_type == DT_DIR) {
      q.Put(std::move(child));
    } else if (e->d_type == DT_REG) {
      if (CopyFile(child.from, child.to, buf, t)) {
        ++t.files;
      } else {
        ++t.errors;
      }
    }
  }
  closedir(d);
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 8;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else {
      args.push_back(a);
    }
  }
  if (args.size() < 2 || threads < 1) {
    std::fprintf(stderr, "usage: cyrsync_copy_floor [--threads N] SRC... DST\n");
    return 2;
  }
  const std::string dst = args.back();
  args.pop_back();
  if (mkdir(dst.c_str(), 0700) != 0) {
    std::fprintf(stderr, "cyrsync_copy_floor: mkdir %s: %s\n", dst.c_str(), std::strerror(errno));
    return 2;
  }
  auto t0 = std::chrono::steady_clock::now();
  double c0 = CpuSeconds();
  Totals totals;
  DirQueue q;
  q.SetWorkers(threads);
  for (auto& src : args) {
    while (src.size() > 1 && src.back() == '/') src.pop_back();
    std::string base = src.substr(src.find_last_of('/') + 1);
    q.Put({src, dst + "/" + base});
  }
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&] {
      std::vector<char> buf(1 << 16);
      DirJob job;
      while (q.Take(&job)) CopyDir(job, q, buf, totals);
    });
  }
  for (auto& th : pool) th.join();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("copy_floor threads=%d files=%llu dirs=%llu bytes=%llu errors=%llu wall=%.3f "
              "cpu=%.3f\n",
              threads, static_cast<unsigned long long>(totals.files.load()),
              static_cast<unsigned long long>(totals.dirs.load()),
              static_cast<unsigned long long>(totals.bytes.load()),
              static_cast<unsigned long long>(totals.errors.load()), wall, CpuSeconds() - c0);
  return totals.errors.load() == 0 ? 0 : 1;
}
