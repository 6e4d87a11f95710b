// ChangeWatch: which directories of the replica may have changed since the daemon last statted
// their files, from inotify events. The manifest check of an unchanged replica then stats
// nothing: a directory watched since its files were last statted, with no event since, still
// holds exactly what was statted.
//
// What inotify does not see, and how the check still covers it:
// - changes while no daemon ran: a new process starts with no directory quiet;
// - a root (partition, configdirectory, sievedir) or one of its ancestors replaced, moved or
//   mounted over: each Poll stats the roots and compares device and inode;
// - a lost event queue (IN_Q_OVERFLOW): every directory stops being quiet;
// - the watch limit (fs.inotify.max_user_watches): a directory that cannot be watched is
//   statted every time, as without the watch.
// Writes through another host's mount of the same disk (NFS) are not seen at all: such a
// replica runs `serve --no-watch`.
//
// Thread-safe. A background thread reads events as they come, so the kernel's queue does not
// overflow while the daemon itself writes thousands of files. An event queued before an Arm and
// read after it ends the quiet state that Arm gave: a needless stat, never a missed change.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "common/status.h"

namespace cyrsync::replica {

class ChangeWatch {
 public:
  static Result<std::unique_ptr<ChangeWatch>> Open(spdlog::logger* log);
  ~ChangeWatch();
  ChangeWatch(const ChangeWatch&) = delete;
  ChangeWatch& operator=(const ChangeWatch&) = delete;

  // Applies the events queued so far and checks that each root is still the directory it was.
  // Call at the start of a check: every change made before the call is then accounted for.
  void Poll();
  // True when dir (absolute) has been watched since its last Arm and nothing happened in it,
  // to it or to a directory above it since.
  bool Quiet(const std::string& dir) const;
  // Watches rel_dir (relative to root, "" for the root itself) and each directory between root
  // and it, and marks it quiet. Call before statting the files in it: a change after the stat
  // shows as an event. false: it could not be watched (watch limit, vanished) and is not quiet.
  bool Arm(const std::string& root, std::string_view rel_dir);

  size_t watches() const;
  // Applies one event as if the kernel had queued it (tests).
  void ApplyForTest(int wd, uint32_t mask, std::string_view name);
  int WatchOfForTest(const std::string& dir) const;

 private:
  struct Node {
    int wd = -1;  // -1: not watched
    bool quiet = false;
  };
  struct RootId {
    dev_t dev = 0;
    ino_t ino = 0;
  };
  ChangeWatch(int fd, int stop_fd, spdlog::logger* log) : fd_(fd), stop_fd_(stop_fd), log_(log) {}

  void ReaderLoop();
  void ReadEventsLocked();
  void ApplyLocked(int wd, uint32_t mask, std::string_view name);
  // Drops dir and every node below it: their watches are on inodes that left the path.
  void ForgetSubtreeLocked(const std::string& dir);
  void UnquietAllLocked();
  bool WatchLocked(const std::string& dir);
  void CheckRootsLocked();

  const int fd_;       // inotify, non-blocking
  const int stop_fd_;  // eventfd that ends the reader thread
  spdlog::logger* log_;
  mutable std::mutex mu_;
  using Nodes = std::map<std::string, Node>;
  Nodes nodes_;  // by absolute path: a subtree is one range
  std::unordered_map<int, Nodes::iterator> paths_;  // wd -> its node (one lookup per event)
  std::map<std::string, RootId> roots_;
  bool limit_logged_ = false;
  std::thread reader_;
};

}  // namespace cyrsync::replica
