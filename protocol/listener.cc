#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include "protocol/channel.h"
#include "protocol/channel_internal.h"

namespace cyrsync::protocol {
namespace internal {

// The acceptor runs on the listener's own io_context; each accepted socket is created on its
// channel's io_context. Close() from another thread never touches the acceptor while Accept is
// using it: it posts the close to the io_context Accept is running instead.
struct ListenerImpl {
  ListenerImpl(std::shared_ptr<asio::ssl::context> tls_context, const ListenerOptions& opts)
      : acceptor(io), tls(std::move(tls_context)), options(opts) {}

  Status Open(const std::string& host, uint16_t port);
  Result<std::unique_ptr<ChannelImpl>> AcceptTcp();
  Result<std::unique_ptr<Channel>> Accept();
  void Close();

  asio::io_context io;
  tcp::acceptor acceptor;
  std::shared_ptr<asio::ssl::context> tls;
  const ListenerOptions options;
  uint16_t bound_port = 0;

  std::mutex mu;
  bool closed = false;                 // guarded by mu
  bool accepting = false;              // guarded by mu; Accept is inside io.run()
  ChannelImpl* handshaking = nullptr;  // guarded by mu; the channel Accept is handshaking
};

Status ListenerImpl::Open(const std::string& host, uint16_t port) {
  ErrorCode ec;
  tcp::resolver resolver(io);
  const auto results = resolver.resolve(
      host, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return InvalidArgumentError("listen address " + host + ": " +
                                (ec ? ec.message() : "no addresses"));
  }
  const tcp::endpoint endpoint = results.begin()->endpoint();
  const std::string where = host + ":" + std::to_string(port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(options.backlog, ec);
  if (ec) {
    return UnavailableError("listen on " + where + ": " + ec.message());
  }
  bound_port = acceptor.local_endpoint(ec).port();
  return Status::Ok();
}

Result<std::unique_ptr<ChannelImpl>> ListenerImpl::AcceptTcp() {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (closed) {
      return AbortedError("listener closed");
    }
    accepting = true;
  }
  auto impl = std::make_unique<ChannelImpl>(tls, options.channel);
  std::optional<ErrorCode> done;
  acceptor.async_accept(impl->socket(), [&done](const ErrorCode& e) { done = e; });
  io.restart();
  io.run();  // returns once the accept completes or a posted Close() cancels it
  std::lock_guard<std::mutex> lock(mu);
  accepting = false;
  if (closed) {
    ErrorCode ignored;
    acceptor.close(ignored);
    return AbortedError("listener closed");
  }
  if (!done.has_value() || *done) {
    return IOError("accept on port " + std::to_string(bound_port) + ": " +
                   (done.has_value() ? done->message() : "no result"));
  }
  impl->Connected();
  handshaking = impl.get();
  return impl;
}

Result<std::unique_ptr<Channel>> ListenerImpl::Accept() {
  ASSIGN_OR_RETURN(std::unique_ptr<ChannelImpl> impl, AcceptTcp());
  Status st = impl->Handshake(asio::ssl::stream_base::server, options.handshake_timeout);
  {
    std::lock_guard<std::mutex> lock(mu);
    handshaking = nullptr;
    if (closed) {
      return AbortedError("listener closed");
    }
  }
  RETURN_IF_ERROR(st);
  return ChannelAccess::Wrap(std::move(impl));
}

void ListenerImpl::Close() {
  std::lock_guard<std::mutex> lock(mu);
  if (closed) {
    return;
  }
  closed = true;
  if (handshaking != nullptr) {
    handshaking->Interrupt();
  }
  if (accepting) {
    asio::post(io, [this] {
      ErrorCode ignored;
      acceptor.close(ignored);
    });
  } else {
    ErrorCode ignored;
    acceptor.close(ignored);
  }
}

}  // namespace internal

Result<std::unique_ptr<Listener>> Listener::Bind(const std::string& host, uint16_t port,
                                                 const TlsFiles& files,
                                                 const ListenerOptions& options) {
  ASSIGN_OR_RETURN(auto tls, MakeServerContext(files));
  return Bind(host, port, std::move(tls), options);
}

Result<std::unique_ptr<Listener>> Listener::Bind(const std::string& host, uint16_t port,
                                                 std::shared_ptr<boost::asio::ssl::context> tls,
                                                 const ListenerOptions& options) {
  try {
    auto impl = std::make_unique<internal::ListenerImpl>(std::move(tls), options);
    RETURN_IF_ERROR(impl->Open(host, port));
    return std::unique_ptr<Listener>(new Listener(std::move(impl)));
  } catch (const boost::system::system_error& e) {
    return UnavailableError("listen on " + host + ":" + std::to_string(port) + ": " + e.what());
  }
}

Listener::Listener(std::unique_ptr<internal::ListenerImpl> impl) : impl_(std::move(impl)) {}
Listener::~Listener() { Close(); }

uint16_t Listener::port() const { return impl_->bound_port; }

Result<std::unique_ptr<Channel>> Listener::Accept() {
  try {
    return impl_->Accept();
  } catch (const boost::system::system_error& e) {
    return IOError(std::string("accept: ") + e.what());
  }
}

void Listener::Close() { impl_->Close(); }

}  // namespace cyrsync::protocol
