#include "replica/change_watch.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/env.h"

namespace cyrsync::replica {
namespace {

// Anything that can change a file's stat tuple or which file a name holds. IN_CLOSE_WRITE also
// covers a writer that changes a file through a shared mapping and then closes it.
constexpr uint32_t kMask = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO |
                           IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                           IN_DONT_FOLLOW;
// Events that mean the watched directory itself left its path (or its filesystem left).
constexpr uint32_t kGone = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED;

}  // namespace

Result<std::unique_ptr<ChangeWatch>> ChangeWatch::Open(spdlog::logger* log) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return PosixError("inotify_init1", errno);
  int stop = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop < 0) {
    const int err = errno;
    ::close(fd);
    return PosixError("eventfd", err);
  }
  std::unique_ptr<ChangeWatch> w(new ChangeWatch(fd, stop, log));
  w->reader_ = std::thread([p = w.get()] { p->ReaderLoop(); });
  return w;
}

ChangeWatch::~ChangeWatch() {
  const uint64_t one = 1;
  if (::write(stop_fd_, &one, sizeof one) < 0) {
    // Cannot happen for an eventfd below its maximum; the join below would then hang.
    std::abort();
  }
  reader_.join();
  ::close(stop_fd_);
  ::close(fd_);
}

void ChangeWatch::ReaderLoop() {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log_->error("change watch stopped reading events error=\"{}\"", std::strerror(errno));
      return;  // Poll() still reads the queue at every check
    }
    if (fds[1].revents != 0) return;
    std::lock_guard g(mu_);
    ReadEventsLocked();
  }
}

void ChangeWatch::Poll() {
  std::lock_guard g(mu_);
  ReadEventsLocked();
  CheckRootsLocked();
}

void ChangeWatch::ReadEventsLocked() {
  alignas(inotify_event) char buf[64 * 1024];
  while (true) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: the queue is empty
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      ApplyLocked(ev->wd, ev->mask, ev->len ? std::string_view(ev->name) : std::string_view());
      off += sizeof(inotify_event) + ev->len;
    }
  }
}

void ChangeWatch::ApplyLocked(int wd, uint32_t mask, std::string_view name) {
  if (mask & IN_Q_OVERFLOW) {
    log_->warn("change watch lost events (inotify queue overflow); the next check stats every "
               "file");
    UnquietAllLocked();
    return;
  }
  auto it = paths_.find(wd);
  if (it == paths_.end()) return;  // a watch already forgotten
  Nodes::iterator node = it->second;
  if (mask & kGone) {
    ForgetSubtreeLocked(std::string(node->first));
    return;
  }
  // A subdirectory created, removed, renamed or changed: whatever was watched at that path may
  // now be another directory.
  if (!name.empty() && (mask & IN_ISDIR)) {
    ForgetSubtreeLocked(JoinPath(node->first, name));
    return;
  }
  node->second.quiet = false;  // a file in it, or its own attributes
}

void ChangeWatch::ForgetSubtreeLocked(const std::string& dir) {
  auto forget = [this](Nodes::iterator n) {
    if (n->second.wd >= 0) {
      // The watch stays on an inode that is no longer at this path (or is gone: then the
      // kernel already dropped it and this fails harmlessly).
      (void)::inotify_rm_watch(fd_, n->second.wd);
      paths_.erase(n->second.wd);
    }
    return nodes_.erase(n);
  };
  if (auto n = nodes_.find(dir); n != nodes_.end()) forget(n);
  // Below it: one range ("dir.old" sorts between "dir" and "dir/", and is not below it).
  const std::string below = dir + "/";
  for (auto n = nodes_.lower_bound(below);
       n != nodes_.end() && n->first.compare(0, below.size(), below) == 0;) {
    n = forget(n);
  }
}

void ChangeWatch::UnquietAllLocked() {
  // The watches themselves stay right: only what happened in between is unknown.
  for (auto& [path, node] : nodes_) node.quiet = false;
}

bool ChangeWatch::WatchLocked(const std::string& dir) {
  if (auto n = nodes_.find(dir); n != nodes_.end() && n->second.wd >= 0) return true;
  int wd = ::inotify_add_watch(fd_, dir.c_str(), kMask);
  if (wd < 0) {
    if (errno == ENOSPC && !limit_logged_) {
      limit_logged_ = true;
      log_->warn("inotify watch limit reached watches={}: directories beyond it are statted at "
                 "every check (raise fs.inotify.max_user_watches)",
                 paths_.size());
    }
    return false;
  }
  if (auto old = paths_.find(wd); old != paths_.end() && old->second->first != dir) {
    // The same directory under a new path (it was moved): the old path and what was watched
    // below it hold something else now. The watch itself is kept for the new path.
    const std::string old_path = old->second->first;
    old->second->second.wd = -1;
    paths_.erase(old);
    ForgetSubtreeLocked(old_path);
  }
  auto node = nodes_.try_emplace(dir).first;
  node->second.wd = wd;
  paths_[wd] = node;
  return true;
}

bool ChangeWatch::Arm(const std::string& root, std::string_view rel_dir) {
  std::lock_guard g(mu_);
  if (!roots_.count(root)) {
    struct stat st;
    if (::stat(root.c_str(), &st) != 0) return false;
    roots_[root] = RootId{st.st_dev, st.st_ino};
  }
  if (!WatchLocked(root)) return false;
  std::string path = root;
  size_t pos = 0;
  while (pos < rel_dir.size()) {
    size_t slash = rel_dir.find('/', pos);
    if (slash == std::string_view::npos) slash = rel_dir.size();
    path += '/';
    path.append(rel_dir.substr(pos, slash - pos));
    if (!WatchLocked(path)) return false;
    pos = slash + 1;
  }
  nodes_[path].quiet = true;  // watched just above
  return true;
}

void ChangeWatch::CheckRootsLocked() {
  for (auto it = roots_.begin(); it != roots_.end();) {
    struct stat st;
    if (::stat(it->first.c_str(), &st) == 0 && st.st_dev == it->second.dev &&
        st.st_ino == it->second.ino) {
      ++it;
      continue;
    }
    log_->warn("replica root changed identity, its files are statted again root={}", it->first);
    ForgetSubtreeLocked(it->first);
    it = roots_.erase(it);
  }
}

bool ChangeWatch::Quiet(const std::string& dir) const {
  std::lock_guard g(mu_);
  auto it = nodes_.find(dir);
  return it != nodes_.end() && it->second.quiet && it->second.wd >= 0;
}

size_t ChangeWatch::watches() const {
  std::lock_guard g(mu_);
  return paths_.size();
}

void ChangeWatch::ApplyForTest(int wd, uint32_t mask, std::string_view name) {
  std::lock_guard g(mu_);
  ApplyLocked(wd, mask, name);
}

int ChangeWatch::WatchOfForTest(const std::string& dir) const {
  std::lock_guard g(mu_);
  auto it = nodes_.find(dir);
  return it == nodes_.end() ? -1 : it->second.wd;
}

}  // namespace cyrsync::replica
