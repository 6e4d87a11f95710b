#include "snapshot/session_pool.h"

#include <chrono>

#include "protocol/channel.h"
#include "protocol/channel_transport.h"
#include "snapshot/engine.h"

namespace cyrsync::snapshot {

Result<std::unique_ptr<protocol::Transport>> ConnectRead(const SnapshotConfig& conf,
                                                         const Slot& slot) {
  ASSIGN_OR_RETURN(auto ch, protocol::Connect(slot.host, slot.port, conf.tls,
                                              std::chrono::seconds(30)));
  auto t = std::make_unique<protocol::ChannelTransport>(std::move(ch));
  protocol::Hello hello;
  hello.mode = "read";
  RETURN_IF_ERROR(t->Send(protocol::kHello, protocol::Encode(hello)));
  RETURN_IF_ERROR(protocol::ReceiveExpect(*t, protocol::kHelloOk).status());
  return std::unique_ptr<protocol::Transport>(std::move(t));
}

SessionPool::~SessionPool() {
  for (auto& [slot, t] : idle_) t->Close();
}

Result<ReadSession> SessionPool::Open(const Slot& slot, const std::string& user) {
  ReadSession s;
  s.slot = &slot;
  if (auto it = idle_.find(&slot); it != idle_.end()) {
    s.t = std::move(it->second);
    idle_.erase(it);
    auto state = FetchUserState(*s.t, user);
    if (state.ok()) {
      s.state = std::move(*state);
      return s;
    }
    s.t->Close();
  }
  ASSIGN_OR_RETURN(s.t, connect_(slot));
  ASSIGN_OR_RETURN(s.state, FetchUserState(*s.t, user));
  return s;
}

void SessionPool::Keep(ReadSession s) {
  auto& kept = idle_[s.slot];
  if (kept) kept->Close();
  kept = std::move(s.t);
}

}  // namespace cyrsync::snapshot
