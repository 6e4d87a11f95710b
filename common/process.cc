#include "common/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

extern char** environ;

namespace cyrsync {
namespace {

// Closes both ends of a pipe and the spawn actions on every path out of RunProcess.
struct SpawnState {
  int fds[2] = {-1, -1};
  posix_spawn_file_actions_t fa;
  bool fa_init = false;
  ~SpawnState() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
    if (fa_init) posix_spawn_file_actions_destroy(&fa);
  }
};

void Drain(int fd, size_t max_output, std::string* out) {
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    size_t keep = std::min(static_cast<size_t>(n), max_output - std::min(max_output, out->size()));
    out->append(buf, keep);
  }
}

}  // namespace

std::string ProcessResult::Describe() const {
  return term_signal ? "signal " + std::to_string(term_signal) : "exit " + std::to_string(exit_code);
}

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                 const std::string& stdin_path, size_t max_output) {
  if (argv.empty()) return InvalidArgumentError("RunProcess: empty argv");
  SpawnState st;
  if (::pipe2(st.fds, O_CLOEXEC) < 0) return PosixError("pipe", errno);
  posix_spawn_file_actions_init(&st.fa);
  st.fa_init = true;
  const std::string in = stdin_path.empty() ? "/dev/null" : stdin_path;
  posix_spawn_file_actions_addopen(&st.fa, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&st.fa, st.fds[1], 1);
  posix_spawn_file_actions_adddup2(&st.fa, st.fds[1], 2);
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, argv[0].c_str(), &st.fa, nullptr, cargv.data(), environ);
  if (rc != 0) return PosixError("cannot run " + argv[0], rc);
  ::close(st.fds[1]);
  st.fds[1] = -1;
  ProcessResult r;
  Drain(st.fds[0], max_output, &r.output);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return PosixError("waitpid " + argv[0], errno);
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.term_signal = WTERMSIG(status);
  return r;
}

}  // namespace cyrsync
