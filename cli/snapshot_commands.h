// Snapshot-host subcommands: snapshot, restore, verify, compact, reindex. Each reads the snapshot
// configuration (JSON) once and returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace cyrsync::cli {

struct SnapshotArgs {
  std::string config;
  std::vector<std::string> users;  // empty with all: every user of the configuration
  bool all = false;
  std::string from;                // "", "master", "replica"
  // restore
  std::string folder;
  uint32_t uid = 0;
  int64_t run = 0;
  std::string to;
  std::string owner;               // user to own restored files
  // verify / compact
  bool json = false;
  bool force = false;
};

int RunSnapshot(const SnapshotArgs& a);
int RunRestore(const SnapshotArgs& a);
int RunVerify(const SnapshotArgs& a);
int RunCompact(const SnapshotArgs& a);
int RunReindex(const SnapshotArgs& a);

}  // namespace cyrsync::cli
