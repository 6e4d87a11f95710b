// SessionPool: a snapshot worker's idle read sessions, one per slot. The users a worker takes
// share one connection to their slot's daemon instead of a TLS handshake each (in an unchanged
// snapshot of 1,000 users the handshakes were three quarters of the daemon's CPU).
// Thread-compatible: one per worker.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"
#include "protocol/messages.h"
#include "protocol/transport.h"
#include "snapshot/config.h"

namespace cyrsync::snapshot {

// A read session on a slot that has fetched one user's state.
struct ReadSession {
  std::unique_ptr<protocol::Transport> t;
  protocol::UserState state;
  const Slot* slot = nullptr;
};

// Opens a read session (HELLO done) on a slot.
using SlotConnector = std::function<Result<std::unique_ptr<protocol::Transport>>(const Slot&)>;

// Connects with conf's TLS settings and says HELLO in read mode.
Result<std::unique_ptr<protocol::Transport>> ConnectRead(const SnapshotConfig& conf,
                                                         const Slot& slot);

class SessionPool {
 public:
  explicit SessionPool(SlotConnector connect) : connect_(std::move(connect)) {}
  ~SessionPool();
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  // A session on slot that has fetched user's state: the kept one when there is one. A kept
  // session that fails (the daemon closed it after its idle timeout, say) is replaced by a new
  // one, once.
  Result<ReadSession> Open(const Slot& slot, const std::string& user);
  // Keeps a session whose last exchange ended cleanly (every reply read), for the next user on
  // its slot. A session left mid-exchange must be closed instead.
  void Keep(ReadSession s);

 private:
  SlotConnector connect_;
  std::map<const Slot*, std::unique_ptr<protocol::Transport>> idle_;
};

}  // namespace cyrsync::snapshot
