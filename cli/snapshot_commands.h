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
  // restore --into-spool: into a stopped Cyrus described by imapd_conf
  bool into_spool = false;
  std::string imapd_conf;
  bool overwrite = false;          // write over existing files and mailboxes.db entries
  bool no_undump = false;          // print the ctl_mboxlist command instead of running it
  std::string mailboxes_json;      // where the ctl_mboxlist -u input goes (default: beside
                                   // mailboxes.db, cyrsync-restore-<user>.json)
  std::string cyrus_bin = "/usr/lib/cyrus/bin";
  // restore --into-slot: into the running Cyrus of a slot, as new folders named after --as
  std::string into_slot;           // "master" or "replica"
  std::string as_name;
  // verify / compact
  bool json = false;
  bool force = false;
  bool against_slot = false;  // verify: also check what the slot serves is archived
};

int RunSnapshot(const SnapshotArgs& a);
int RunRestore(const SnapshotArgs& a);  // --to DIR, or --into-spool (RunRestoreIntoSpool)
int RunRestoreIntoSpool(const SnapshotArgs& a);
int RunRestoreIntoSlot(const SnapshotArgs& a);
int RunVerify(const SnapshotArgs& a);
int RunCompact(const SnapshotArgs& a);
int RunReindex(const SnapshotArgs& a);

}  // namespace cyrsync::cli
