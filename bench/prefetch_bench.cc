// Reads every message file (`<uid>.`) under the given folder directories, the way the daemon
// answers MESSAGES_FETCH and the syncer copies a folder: a Prefetcher per batch of --per files,
// taken in order. The baseline reads the same files with --threads threads doing open + pread +
// close per file. Runs alternate; with --cold the page cache is dropped before each (root).
//
//   cyrsync_prefetch_bench [--cold] [--reps N] [--per N] [--threads N] DIR...
//   cyrsync_prefetch_bench --cold --reps 2 $(cat /tmp/snp/user-dirs.txt)   # snapshot_bench --keep
//
// Prints wall and CPU (user + system, all threads) per run, then the medians' ratios.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/prefetch.h"

namespace {

struct Options {
  bool cold = false;
  int reps = 3;
  size_t per = 512;
  int threads = 8;
  std::vector<std::string> dirs;
};

struct Sample {
  double wall = 0;
  double cpu = 0;
  uint64_t bytes = 0;
};

bool IsMessageName(const char* n) {
  size_t len = std::strlen(n);
  if (len < 2 || n[len - 1] != '.') return false;
  return std::all_of(n, n + len - 1, [](char c) { return c >= '0' && c <= '9'; });
}

// The message files of each directory in uid order, directories in the order given.
std::vector<std::string> ListMessages(const std::vector<std::string>& dirs) {
  std::vector<std::string> out;
  for (const auto& d : dirs) {
    DIR* dir = opendir(d.c_str());
    if (!dir) continue;
    std::vector<std::pair<unsigned long, std::string>> names;
    while (dirent* e = readdir(dir)) {
      if (IsMessageName(e->d_name)) names.emplace_back(std::strtoul(e->d_name, nullptr, 10), e->d_name);
    }
    closedir(dir);
    std::sort(names.begin(), names.end());
    for (auto& [uid, n] : names) out.push_back(d + "/" + n);
  }
  return out;
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

void DropCaches() {
  sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  f << "3\n";
  if (!f) std::fprintf(stderr, "cannot drop caches (root needed); measuring warm\n");
}

template <typename Fn>
Sample Measure(bool cold, Fn fn) {
  if (cold) DropCaches();
  const double c0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  Sample s;
  s.bytes = fn();
  s.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.cpu = CpuSeconds() - c0;
  return s;
}

uint64_t ReadWithThreads(const std::vector<std::string>& paths, int threads) {
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      std::vector<char> buf(1 << 20);
      for (size_t i; (i = next++) < paths.size();) {
        int fd = open(paths[i].c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        for (off_t off = 0;;) {
          ssize_t n = pread(fd, buf.data(), buf.size(), off);
          if (n <= 0) break;
          off += n;
          bytes += static_cast<uint64_t>(n);
        }
        close(fd);
      }
    });
  }
  for (auto& t : pool) t.join();
  return bytes;
}

uint64_t ReadWithPrefetcher(const std::vector<std::string>& paths, size_t per) {
  uint64_t bytes = 0;
  for (size_t start = 0; start < paths.size(); start += per) {
    const size_t n = std::min(per, paths.size() - start);
    std::vector<std::string> part(paths.begin() + static_cast<std::ptrdiff_t>(start),
                                  paths.begin() + static_cast<std::ptrdiff_t>(start + n));
    cyrsync::Prefetcher ahead(cyrsync::Env::Default(), std::move(part));
    for (size_t i = 0; i < n; ++i) {
      cyrsync::Prefetcher::Item item = ahead.Take(i);
      if (item.large) {
        auto all = item.large->ReadAll();
        if (all.ok()) bytes += all->size();
      } else {
        bytes += item.data.size();
      }
    }
  }
  return bytes;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

bool Parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--cold") {
      o->cold = true;
    } else if (a == "--reps" || a == "--per" || a == "--threads") {
      const char* v = value();
      if (!v) return false;
      const long n = std::strtol(v, nullptr, 10);
      if (n <= 0) return false;
      if (a == "--reps") o->reps = static_cast<int>(n);
      if (a == "--per") o->per = static_cast<size_t>(n);
      if (a == "--threads") o->threads = static_cast<int>(n);
    } else if (!a.empty() && a[0] == '-') {
      return false;
    } else {
      o->dirs.push_back(a);
    }
  }
  return !o->dirs.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!Parse(argc, argv, &o)) {
    std::fprintf(stderr, "usage: %s [--cold] [--reps N] [--per N] [--threads N] DIR...\n", argv[0]);
    return 2;
  }
  const std::vector<std::string> paths = ListMessages(o.dirs);
  std::printf("%zu message files in %zu directories, %s, %d reps\n", paths.size(), o.dirs.size(),
              o.cold ? "cold" : "warm", o.reps);
  std::vector<double> base_wall, base_cpu, pf_wall, pf_cpu;
  for (int r = 0; r < o.reps; ++r) {
    Sample b = Measure(o.cold, [&] { return ReadWithThreads(paths, o.threads); });
    Sample p = Measure(o.cold, [&] { return ReadWithPrefetcher(paths, o.per); });
    std::printf("rep %d: %d threads open+pread %.2f s wall %.2f s CPU | Prefetcher per %zu %.2f s "
                "wall %.2f s CPU | bytes %llu %llu\n",
                r + 1, o.threads, b.wall, b.cpu, o.per, p.wall, p.cpu,
                static_cast<unsigned long long>(b.bytes), static_cast<unsigned long long>(p.bytes));
    if (b.bytes != p.bytes) {
      std::fprintf(stderr, "the two reads disagree on the bytes read\n");
      return 1;
    }
    base_wall.push_back(b.wall);
    base_cpu.push_back(b.cpu);
    pf_wall.push_back(p.wall);
    pf_cpu.push_back(p.cpu);
  }
  std::printf("median: Prefetcher %.2f s wall, %.2f s CPU; baseline %.2f s, %.2f s -> "
              "wall %.2fx faster, CPU %.2fx less\n",
              Median(pf_wall), Median(pf_cpu), Median(base_wall), Median(base_cpu),
              Median(base_wall) / Median(pf_wall), Median(base_cpu) / Median(pf_cpu));
  return 0;
}
