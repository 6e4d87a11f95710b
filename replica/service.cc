#include "replica/service.h"

#include "protocol/channel_transport.h"
#include "replica/session.h"

namespace cyrsync::replica {

Service::Service(Store& store, std::unique_ptr<protocol::Listener> listener,
                 std::shared_ptr<spdlog::logger> log)
    : store_(store) {
  auto handler = [this, log](protocol::Channel& ch) {
    protocol::ChannelTransport t(&ch);
    Status st = ServeSession(t, store_);
    log->info("session closed peer={} status={}", ch.PeerName(), st.ok() ? "ok" : st.ToString());
  };
  server_ = std::make_unique<protocol::Server>(std::move(listener), handler, log);
}

void Service::Run() { server_->Run(); }
void Service::Stop() { server_->Stop(); }

}  // namespace cyrsync::replica
