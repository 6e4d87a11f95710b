// Syncer: one pass of master -> replica synchronisation (or replica -> master for a manual
// resync: the direction is only which side runs the syncer). Thread-safe to construct; RunPass
// runs worker threads internally, one connection each.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "common/env.h"
#include "cyrus/config.h"
#include "protocol/transport.h"
#include "cyrus/mailbox_cache.h"
#include "syncer/options.h"

namespace cyrsync::syncer {

// Opens a new connection to the replica (TLS in production, a pipe in tests).
using Connector = std::function<Result<std::unique_ptr<protocol::Transport>>()>;

struct PassStats {
  uint64_t folders = 0;            // folders in scope on the source
  uint64_t folders_changed = 0;    // copied (metadata + needed messages)
  uint64_t folders_checked = 0;    // --full: unchanged folders compared by listing
  uint64_t folders_failed = 0;     // includes sent folders whose install then failed
  uint64_t folders_missing = 0;    // listed in mailboxes.db, no cyrus.index on the source
  uint64_t folders_deleted = 0;    // removed from the replica
  uint64_t folders_unsettled = 0;  // copied within the racy window: copied again next pass
  uint64_t folders_unlisted = 0;   // --full: on disk but not in mailboxes.db
  uint64_t messages_sent = 0;
  uint64_t messages_vanished = 0;
  uint64_t bytes_sent = 0;
  uint64_t server_files_copied = 0;
  uint64_t server_files_removed = 0;
  std::string replica_instance;
};

class Syncer {
 public:
  Syncer(Env* env, const cyrus::ImapdConf& conf, Options opts, Connector connect,
         std::shared_ptr<spdlog::logger> log);

  // Runs one pass. kFailedPrecondition when the guard refuses (the message says why and how to
  // override); other errors when the source or the replica cannot be read at all. Per-folder
  // failures are counted in the stats and logged, and do not stop the pass.
  Result<PassStats> RunPass();

 private:
  Env* env_;
  const cyrus::ImapdConf& conf_;
  Options opts_;
  Connector connect_;
  std::shared_ptr<spdlog::logger> log_;
  cyrus::MailboxListCache mailboxes_;  // kept between the passes of --every
};

// Sends HELLO and returns the replica's instance id.
Result<std::string> Handshake(protocol::Transport& t);

}  // namespace cyrsync::syncer
