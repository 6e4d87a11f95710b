#include "protocol/server.h"

#include <exception>
#include <vector>

namespace cyrsync::protocol {
namespace {

// Pause after accept(2) itself fails (e.g. out of descriptors) so the loop does not spin.
constexpr auto kAcceptErrorPause = std::chrono::milliseconds(200);

}  // namespace

Server::Server(std::unique_ptr<Listener> listener, std::function<void(Channel&)> handler,
               std::shared_ptr<spdlog::logger> logger, ServerOptions options)
    : listener_(std::move(listener)),
      handler_(std::move(handler)),
      log_(std::move(logger)),
      options_(options) {}

Server::~Server() {
  Stop();
  JoinAll();
}

void Server::Run() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = !stopping_;
  }
  log_->info("server listening port={} max_connections={}", listener_->port(),
             options_.max_connections);
  while (WaitForSlot()) {
    Result<std::unique_ptr<Channel>> channel = listener_->Accept();
    if (!channel.has_value()) {
      if (!HandleAcceptError(channel.error())) {
        break;
      }
      continue;
    }
    StartConnection(std::move(channel).value());
  }
  JoinAll();
  log_->info("server stopped port={}", listener_->port());
  std::lock_guard<std::mutex> lock(mu_);
  running_ = false;
  cv_.notify_all();
}

bool Server::WaitForSlot() {
  ReapFinished();
  std::unique_lock<std::mutex> lock(mu_);
  if (!stopping_ && LiveLocked() >= options_.max_connections) {
    log_->warn("connection limit reached active={}", options_.max_connections);
    cv_.wait(lock, [this] { return stopping_ || LiveLocked() < options_.max_connections; });
  }
  return !stopping_;
}

size_t Server::LiveLocked() const {
  size_t n = 0;
  for (const Connection& c : conns_) {
    n += c.done ? 0 : 1;
  }
  return n;
}

size_t Server::active_connections() {
  std::lock_guard<std::mutex> lock(mu_);
  return LiveLocked();
}

bool Server::HandleAcceptError(const Status& error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || error.code() == Code::kAborted) {
      return false;
    }
  }
  if (error.code() == Code::kIOError) {
    log_->error("accept failed error={}", error.ToString());
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, kAcceptErrorPause, [this] { return stopping_; });
    return !stopping_;
  }
  log_->warn("tls handshake failed error={}", error.ToString());
  return true;
}

void Server::StartConnection(std::unique_ptr<Channel> channel) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) {
    return;  // the channel closes as it goes out of scope
  }
  log_->info("connection accepted peer={} addr={}", channel->PeerName(), channel->RemoteAddress());
  Connection& conn = conns_.emplace_back();
  conn.channel = std::move(channel);
  conn.thread = std::thread([this, c = &conn] { Serve(c); });
}

void Server::Serve(Connection* conn) {
  Channel& channel = *conn->channel;
  try {
    handler_(channel);
  } catch (const std::exception& e) {
    log_->error("connection handler failed peer={} addr={} error={}", channel.PeerName(),
                channel.RemoteAddress(), e.what());
  }
  channel.Close();
  log_->info("connection closed peer={} addr={}", channel.PeerName(), channel.RemoteAddress());
  std::lock_guard<std::mutex> lock(mu_);
  conn->done = true;
  cv_.notify_all();
}

void Server::ReapFinished() {
  std::list<Connection> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      auto next = std::next(it);
      if (it->done) {
        finished.splice(finished.end(), conns_, it);
      }
      it = next;
    }
  }
  for (Connection& c : finished) {
    c.thread.join();
  }
}

void Server::JoinAll() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return LiveLocked() == 0; });
  lock.unlock();
  ReapFinished();
}

void Server::Stop() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!stopping_) {
    stopping_ = true;
    listener_->Close();
    for (Connection& c : conns_) {
      c.channel->Interrupt();
    }
    cv_.notify_all();
  }
  cv_.wait(lock, [this] { return !running_; });
}

}  // namespace cyrsync::protocol
