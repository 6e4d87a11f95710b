// The cyrsync subcommands. main parses the command line into these structs once and calls one
// Run* function; each returns the process exit code.
#pragma once

#include <string>
#include <vector>

#include "protocol/tls.h"
#include "syncer/options.h"

namespace cyrsync::cli {

struct SyncArgs {
  std::string imapd_conf;
  std::string replica;  // host:port
  protocol::TlsFiles tls;
  syncer::Options opts;
  int every_seconds = 0;  // 0: one pass
};

struct ServeArgs {
  std::string imapd_conf;
  bool allow_restore = false;
  std::string cyrus_bin = "/usr/lib/cyrus/bin";
  std::string listen;  // host:port
  protocol::TlsFiles tls;
  std::string state_dir;
  std::string cyrus_user = "cyrus";
  std::string cyrus_pidfile;
  bool recover_only = false;
  bool read_only = false;  // beside a live Cyrus: serve snapshot reads only
  int stat_threads = 16;   // threads that check the manifest against the disk
  bool no_watch = false;   // stat every manifest entry at every check (no inotify)
};

struct CaArgs {
  std::string dir;
  std::string name;
  std::vector<std::string> hosts;
};

int RunSync(const SyncArgs& a);
int RunServe(const ServeArgs& a);
int RunCaInit(const CaArgs& a);
int RunCaIssue(const CaArgs& a);

}  // namespace cyrsync::cli
