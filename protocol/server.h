// Server: the replica's accept loop. One std::thread per connection runs the caller's handler
// with a handshaken Channel; the number of live connections is bounded. Run() blocks in one
// thread; Stop() may be called from any other thread (not from inside a handler).
#pragma once

#include <spdlog/logger.h>

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "protocol/channel.h"

namespace cyrsync::protocol {

struct ServerOptions {
  // Connections served at once; further clients wait in the listen backlog. Default 64.
  size_t max_connections = 64;
};

class Server {
 public:
  // handler runs once per connection in that connection's thread; when it returns the channel is
  // closed. It must return soon after the channel's Send/Receive fail with kUnavailable, which is
  // how Stop() ends it. Exceptions escaping it are logged and end that connection only.
  // logger gets "event phrase key=value" lines; must not be null.
  Server(std::unique_ptr<Listener> listener, std::function<void(Channel&)> handler,
         std::shared_ptr<spdlog::logger> logger, ServerOptions options = {});
  ~Server();  // Stop()s; REQUIRES: Run() has returned or was never called
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Accepts connections until Stop(), then waits for every connection thread to finish.
  // Handshake failures are logged and accepting goes on. REQUIRES: called at most once.
  void Run();
  // Closes the listener, interrupts every live channel and, if Run() is active, waits until it
  // has joined all connection threads and returned. Idempotent.
  // REQUIRES: not called from a handler (it would wait for itself).
  void Stop();

  // Connections currently being served.
  size_t active_connections();
  uint16_t port() const { return listener_->port(); }

 private:
  struct Connection {
    std::unique_ptr<Channel> channel;
    std::thread thread;
    bool done = false;
  };

  bool WaitForSlot();
  size_t LiveLocked() const;  // REQUIRES: mu_ held
  bool HandleAcceptError(const Status& error);
  void StartConnection(std::unique_ptr<Channel> channel);
  void Serve(Connection* conn);
  void ReapFinished();
  void JoinAll();

  const std::unique_ptr<Listener> listener_;
  const std::function<void(Channel&)> handler_;
  const std::shared_ptr<spdlog::logger> log_;
  const ServerOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;        // guarded by mu_
  bool running_ = false;         // guarded by mu_; Run() is active
  std::list<Connection> conns_;  // guarded by mu_; list: elements never move
};

}  // namespace cyrsync::protocol
