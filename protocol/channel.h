// Blocking, framed, mutually authenticated TLS connections: Channel (one connection), Connect
// (the syncer side) and Listener (the replica side). One thread drives a Channel at a time; only
// Interrupt() may be called from another thread. Every network wait has a deadline, so a dead or
// silent peer cannot hang the caller. Frame format: doc/formats/protocol.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "protocol/frame.h"
#include "protocol/tls.h"

namespace cyrsync::protocol {

namespace internal {
struct ChannelAccess;
struct ChannelImpl;
struct ListenerImpl;
}  // namespace internal

struct ChannelOptions {
  // Longest wait for the peer to make progress in one Send or Receive (an idle timeout: it
  // restarts whenever bytes move). Default 120 s.
  std::chrono::milliseconds io_timeout{std::chrono::seconds(120)};
  // Largest payload accepted from the peer, and sent to it. Default 8 MiB (the protocol's).
  size_t max_payload = kDefaultMaxPayload;
};

// One TLS connection carrying frames. Created by Connect or Listener::Accept, already handshaken.
//
// Error codes of Send and Receive:
//   kUnavailable:       the peer closed, the network failed, the idle timeout passed, or the
//                       channel was interrupted or closed; retry on a new connection.
//   kPermissionDenied:  the peer rejected our certificate (a TLS alert arrived).
//   kCorruption:        (Receive) the peer sent a bad frame: too large, non-zero flags, bad CRC.
//   kInvalidArgument:   (Send) the payload exceeds max_payload; the channel stays usable.
// After any other error the channel is broken: later calls return kUnavailable at once and the
// caller should Close() it.
class Channel {
 public:
  ~Channel();  // closes the connection
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Queues one frame. Queued frames are written when 64 KiB are queued, by Flush, before
  // Receive waits for the peer, and by Close; a write error may thus surface on a later call.
  Status Send(uint16_t type, std::string_view payload);
  // Writes every queued frame and returns once they are handed to the kernel.
  Status Flush();
  // Writes the queued frames, then blocks until one whole frame has arrived and its CRC checked.
  Result<Frame> Receive();

  // The commonName of the peer's certificate (verified against our CA during the handshake).
  const std::string& PeerName() const;
  // The peer's "address:port", for logs.
  const std::string& RemoteAddress() const;

  // Writes the queued frames (unless the channel is broken), then closes the connection without
  // a TLS close_notify (the peer sees kUnavailable). Idempotent.
  // REQUIRES: no other thread is inside Send or Receive (use Interrupt for that).
  void Close();
  // Thread-safe. Shuts the socket down so a Send or Receive blocked in another thread returns
  // kUnavailable promptly, as does every later call. Idempotent; the owner still calls Close().
  void Interrupt();

 private:
  friend struct internal::ChannelAccess;
  explicit Channel(std::unique_ptr<internal::ChannelImpl> impl);
  std::unique_ptr<internal::ChannelImpl> impl_;
};

// Connects to host:port, performs the TLS handshake and checks that the server's certificate
// chains to files.ca_file and that its subjectAltName covers host (DNS name or IP literal).
// timeout bounds connect plus handshake; name resolution is bounded by the system resolver.
// Returns kInvalidArgument for unusable TLS files, kUnavailable when the host cannot be resolved
// or reached or the handshake times out, kPermissionDenied when either side rejects the other's
// certificate (with TLS 1.3 a rejection of *our* certificate may only surface on the first
// Receive, as kPermissionDenied there).
Result<std::unique_ptr<Channel>> Connect(const std::string& host, uint16_t port,
                                         const TlsFiles& files, std::chrono::milliseconds timeout,
                                         const ChannelOptions& options = {});
// The same with a context from MakeClientContext, which may be reused across connections.
Result<std::unique_ptr<Channel>> Connect(const std::string& host, uint16_t port,
                                         std::shared_ptr<boost::asio::ssl::context> tls,
                                         std::chrono::milliseconds timeout,
                                         const ChannelOptions& options = {});

struct ListenerOptions {
  // Longest time a new connection may take to complete its TLS handshake. Default 10 s. Accept
  // handshakes one connection at a time, so this also bounds how long a slow client delays others.
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
  ChannelOptions channel;  // for accepted channels
  int backlog = 128;
};

// A listening TCP socket that yields handshaken Channels. Accept is called by one thread at a
// time; Close may be called from any thread.
class Listener {
 public:
  // Binds host:port (port 0 picks a free port; host "0.0.0.0" or "::" for all interfaces) and
  // listens. Returns kInvalidArgument for unusable TLS files or an unresolvable host, kUnavailable
  // when the address cannot be bound (in use, not local).
  static Result<std::unique_ptr<Listener>> Bind(const std::string& host, uint16_t port,
                                                const TlsFiles& files,
                                                const ListenerOptions& options = {});
  // The same with a context from MakeServerContext.
  static Result<std::unique_ptr<Listener>> Bind(const std::string& host, uint16_t port,
                                                std::shared_ptr<boost::asio::ssl::context> tls,
                                                const ListenerOptions& options = {});
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The bound port (the chosen one when Bind was given 0).
  uint16_t port() const;

  // Blocks until a client connects and completes the handshake. Errors:
  //   kAborted:           Close() was called; stop accepting.
  //   kPermissionDenied:  the client's certificate was missing, not signed by our CA, or has
  //                       no commonName.
  //   kUnavailable:       the handshake failed otherwise or timed out; keep accepting.
  //   kIOError:           accept(2) failed (e.g. out of descriptors); keep accepting after a pause.
  // Every message except kAborted's names the client's address.
  Result<std::unique_ptr<Channel>> Accept();

  // Thread-safe and idempotent: stops listening, makes a blocked Accept (including one in the
  // middle of a handshake) return kAborted promptly, and every later Accept too.
  void Close();

 private:
  explicit Listener(std::unique_ptr<internal::ListenerImpl> impl);
  std::unique_ptr<internal::ListenerImpl> impl_;
};

}  // namespace cyrsync::protocol
