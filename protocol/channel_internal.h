// Internals shared by channel.cc and listener.cc; not part of the protocol library's API.
// ChannelImpl: one connection with its own io_context, driven by the owner thread through
// RunWithTimeout (the Asio "blocking client with deadline" pattern: start an async operation, run
// the io_context for at most the timeout, close the socket if it has not finished). Asio's
// synchronous socket calls are not used because they poll without a timeout, so SO_RCVTIMEO
// cannot bound them.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "protocol/channel.h"

namespace cyrsync::protocol::internal {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ErrorCode = boost::system::error_code;

struct ChannelImpl {
  ChannelImpl(std::shared_ptr<asio::ssl::context> tls_context, const ChannelOptions& opts);

  tcp::socket& socket() { return stream.next_layer(); }

  // Starts an operation with start(done) whose handler stores its result in done, then runs the
  // io_context until it completes or timeout passes. On timeout closes the socket, which cancels
  // the operation, and returns asio::error::timed_out.
  template <typename Start>
  ErrorCode RunWithTimeout(std::chrono::milliseconds timeout, Start&& start) {
    std::optional<ErrorCode> done;
    start(done);
    io.restart();
    io.run_for(timeout);
    if (done.has_value()) {
      return *done;
    }
    CloseSocket();
    io.restart();
    io.run();  // lets the cancelled operation's handler run
    return asio::error::timed_out;
  }

  // Called once the TCP connection exists: socket options, remote address, interrupt target.
  void Connected();
  // Runs the TLS handshake, then records the peer's commonName.
  Status Handshake(asio::ssl::stream_base::handshake_type type, std::chrono::milliseconds timeout);
  // Maps a failed operation to a Status naming op and the peer, and marks the channel broken.
  Status Fail(const ErrorCode& ec, std::string_view op);
  Status Usable() const;

  // Queues the frame; writes once kWriteBuffer bytes are queued.
  Status Send(uint16_t type, std::string_view payload);
  // Writes every queued frame. Receive calls it before it waits for the peer.
  Status Flush();
  Status WriteAll(std::string_view data);  // no buffering
  Result<Frame> Receive();
  Status Fill();

  void CloseSocket();
  void Interrupt();

  asio::io_context io;  // declared before stream, which must be destroyed first
  std::shared_ptr<asio::ssl::context> tls;
  asio::ssl::stream<tcp::socket> stream;
  const ChannelOptions options;
  FrameDecoder decoder;
  std::vector<char> rbuf;
  std::string wbuf;  // frames queued by Send, not yet written
  size_t rpos = 0;
  size_t rend = 0;
  std::string peer_name;
  std::string remote_address = "unknown";
  Status broken;  // the first error that broke the channel
  std::atomic<bool> interrupted{false};

  mutable std::mutex mu;  // guards closed and fd against Interrupt from other threads
  bool closed = false;  // guarded by mu
  int fd = -1;          // guarded by mu; the connected socket, for Interrupt's shutdown(2)
};

struct ChannelAccess {
  static std::unique_ptr<Channel> Wrap(std::unique_ptr<ChannelImpl> impl) {
    return std::unique_ptr<Channel>(new Channel(std::move(impl)));
  }
};

// Maps a failed handshake or I/O error to a Status: TLS certificate rejections (ours or the
// peer's) become kPermissionDenied, everything else kUnavailable.
Status TlsIoError(const ErrorCode& ec, SSL* ssl, const std::string& what);

}  // namespace cyrsync::protocol::internal
