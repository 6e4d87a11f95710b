// Fixtures for in-process sync tests against a real Cyrus 3.6 instance driven by
// tests/integration/cyruslab.py: a populated master, an empty replica tree, and an in-process
// replica daemon reached through pipe transports.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "common/log.h"
#include "cyrus/config.h"
#include "protocol/transport.h"
#include "replica/session.h"
#include "replica/store.h"
#include "syncer/syncer.h"

namespace cyrsync::testing {

inline std::string SourceDir() {
  const char* s = std::getenv("CYRSYNC_SOURCE_DIR");
  return s ? s : ".";
}

// Runs a cyruslab.py action; returns its exit status.
inline int Lab(const std::string& args) {
  std::string cmd = "python3 " + SourceDir() + "/tests/integration/cyruslab.py " + args +
                    " > /dev/null";
  return std::system(cmd.c_str());
}

// Skips (or, under CI, fails) when root or Cyrus is missing.
inline bool RealCyrusAvailable() {
  return ::geteuid() == 0 && ::access("/usr/sbin/cyrmaster", X_OK) == 0;
}

#define REQUIRE_REAL_CYRUS()                                                            \
  do {                                                                                  \
    if (!::cyrsync::testing::RealCyrusAvailable()) {                                    \
      const char* ci = std::getenv("CI");                                               \
      if (ci && std::string(ci) == "true") FAIL() << "real Cyrus required under CI";    \
      GTEST_SKIP() << "needs root and Debian's cyrus-imapd (deploy/install-deps.sh)";  \
    }                                                                                   \
  } while (0)

// A replica Store served in-process: every Connect() gets a fresh pipe and session thread.
class InProcessReplica {
 public:
  explicit InProcessReplica(replica::Store* store) : store_(store) {}
  ~InProcessReplica() {
    for (auto& t : threads_) t.join();
  }
  syncer::Connector Connector() {
    return [this]() -> Result<std::unique_ptr<protocol::Transport>> {
      auto [a, b] = protocol::MakePipePair();
      protocol::Transport* server_end = b.release();
      std::lock_guard g(mu_);  // syncer workers connect concurrently
      threads_.emplace_back([this, server_end] {
        std::unique_ptr<protocol::Transport> t(server_end);
        (void)replica::ServeSession(*t, *store_);
      });
      return std::move(a);
    };
  }

 private:
  replica::Store* store_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

}  // namespace cyrsync::testing
