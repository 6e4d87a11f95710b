// The replica daemon (`cyrsync serve`): accepts mutually authenticated TLS connections and runs
// one Session per connection against a shared Store, until Stop().
#pragma once

#include <memory>

#include <spdlog/spdlog.h>

#include "protocol/channel.h"
#include "protocol/server.h"
#include "replica/store.h"

namespace cyrsync::replica {

class Service {
 public:
  Service(Store& store, std::unique_ptr<protocol::Listener> listener,
          std::shared_ptr<spdlog::logger> log);
  uint16_t port() const { return server_->port(); }
  void Run();   // blocks until Stop()
  void Stop();  // safe from any thread

 private:
  Store& store_;
  std::unique_ptr<protocol::Server> server_;
};

}  // namespace cyrsync::replica
