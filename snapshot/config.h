// Snapshot host configuration (JSON, doc/config-snapshot.md): where archives live, the TLS
// files, and the store/slot map — each store has slots (host, port, role master or replica,
// drive unit), users map to stores. Parsed once in main.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "protocol/tls.h"
#include "snapshot/archive.h"

namespace cyrsync::snapshot {

struct Slot {
  std::string host;
  uint16_t port = 0;
  std::string role;   // "master" | "replica"
  std::string drive;  // drive unit; users are batched per drive so one disk is not hammered
  std::string Label() const { return role + " " + host + ":" + std::to_string(port); }
};

struct StoreSlots {
  std::vector<Slot> slots;
  const Slot* Find(std::string_view role) const;
};

struct SnapshotConfig {
  std::string archive_dir;
  protocol::TlsFiles tls;
  std::string default_from = "replica";        // which slot to read from
  std::string on_replica_unavailable = "master";  // "master" (fall back) or "fail"
  int64_t max_replica_lag_seconds = 86400;     // older per-user sync state counts as lagging
  int workers = 0;                             // 0: from the machine
  int batch = 8;                               // users a worker takes from one drive at a time
  std::map<std::string, StoreSlots> stores;
  std::map<std::string, std::string> users;    // user -> store
  std::string default_store;
  WriterOptions writer;
  int64_t retention_seconds = 30 * 86400;

  // The store of a user (its own, else default_store); nullptr when none.
  const StoreSlots* StoreOf(const std::string& user) const;
};

// kInvalidArgument naming the offending key.
Result<SnapshotConfig> ParseSnapshotConfig(std::string_view json_text);

}  // namespace cyrsync::snapshot
