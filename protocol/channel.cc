#include "protocol/channel.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/system_error.hpp>

#include "common/bytes.h"
#include "protocol/channel_internal.h"

namespace cyrsync::protocol {
namespace internal {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Small frames (a request, a short message, DATA_END) are coalesced into few TLS records and
// write(2) calls; a full buffer or a Receive writes them out.
constexpr size_t kWriteBuffer = 64 * 1024;

std::string Millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

bool IsCertificateRejection(const ErrorCode& ec) {
  if (ec.category() != asio::error::get_ssl_category()) {
    return false;
  }
  switch (ERR_GET_REASON(static_cast<unsigned long>(static_cast<unsigned int>(ec.value())))) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

}  // namespace

Status TlsIoError(const ErrorCode& ec, SSL* ssl, const std::string& what) {
  std::string reason = ec.message();
  if (ssl != nullptr) {
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      reason += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    }
  }
  if (IsCertificateRejection(ec)) {
    return PermissionDeniedError(what + ": " + reason);
  }
  return UnavailableError(what + ": " + reason);
}

ChannelImpl::ChannelImpl(std::shared_ptr<asio::ssl::context> tls_context,
                         const ChannelOptions& opts)
    : tls(std::move(tls_context)),
      stream(io, *tls),
      options(opts),
      decoder(opts.max_payload),
      rbuf(kReadChunk) {}

void ChannelImpl::Connected() {
  ErrorCode ec;
  socket().set_option(tcp::no_delay(true), ec);
  socket().set_option(asio::socket_base::keep_alive(true), ec);
  const tcp::endpoint remote = socket().remote_endpoint(ec);
  if (!ec) {
    remote_address = remote.address().to_string() + ":" + std::to_string(remote.port());
  }
  std::lock_guard<std::mutex> lock(mu);
  fd = socket().native_handle();
}

Status ChannelImpl::Handshake(asio::ssl::stream_base::handshake_type type,
                              std::chrono::milliseconds timeout) {
  const ErrorCode ec = RunWithTimeout(timeout, [&](std::optional<ErrorCode>& done) {
    stream.async_handshake(type, [&done](const ErrorCode& e) { done = e; });
  });
  const std::string what = "tls handshake with " + remote_address;
  if (ec == asio::error::timed_out) {
    return UnavailableError(what + " timed out after " + Millis(timeout));
  }
  if (interrupted.load()) {
    return UnavailableError(what + " interrupted");
  }
  if (ec) {
    return TlsIoError(ec, stream.native_handle(), what);
  }
  Result<std::string> cn = PeerCommonName(stream.native_handle());
  if (!cn.ok()) {
    return PermissionDeniedError(what + ": " + cn.error().message());
  }
  peer_name = std::move(cn).value();
  return Status::Ok();
}

Status ChannelImpl::Fail(const ErrorCode& ec, std::string_view op) {
  const std::string what = std::string(op) + " " + remote_address;
  if (interrupted.load()) {
    broken = UnavailableError(what + ": channel interrupted");
  } else if (ec == asio::error::timed_out) {
    broken = UnavailableError(what + ": no progress for " + Millis(options.io_timeout));
  } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
    broken =
        UnavailableError(what + ": connection closed by peer" +
                         (decoder.AtFrameBoundary() ? std::string()
                                                    : " mid-frame at stream offset " +
                                                          std::to_string(decoder.stream_offset())));
  } else {
    broken = TlsIoError(ec, nullptr, what);
  }
  return broken;
}

Status ChannelImpl::Usable() const {
  if (!broken.ok()) {
    return UnavailableError("channel to " + remote_address + " is broken: " + broken.ToString());
  }
  if (interrupted.load()) {
    return UnavailableError("channel to " + remote_address + " was interrupted");
  }
  std::lock_guard<std::mutex> lock(mu);
  if (closed) return UnavailableError("channel to " + remote_address + " is closed");
  return Status::Ok();
}

Status ChannelImpl::Send(uint16_t type, std::string_view payload) {
  RETURN_IF_ERROR(Usable());
  if (payload.size() > options.max_payload) {
    return InvalidArgumentError("frame payload of " + std::to_string(payload.size()) +
                                " bytes exceeds limit " + std::to_string(options.max_payload));
  }
  if (payload.size() < kWriteBuffer) {
    AppendFrame(&wbuf, type, payload);
    return wbuf.size() >= kWriteBuffer ? Flush() : Status::Ok();
  }
  // A large frame (a DATA chunk of a message body) is written from the caller's buffer: copied
  // into wbuf it would grow every channel's buffer to the frame's size. Like a full buffer, it
  // is written out before Send returns.
  const uint32_t crc = AppendFrameHeader(&wbuf, type, payload);
  RETURN_IF_ERROR(Flush());
  RETURN_IF_ERROR(WriteAll(payload));
  AppendBE32(&wbuf, crc);
  return Flush();
}

Status ChannelImpl::WriteAll(std::string_view data) {
  size_t sent = 0;
  while (sent < data.size()) {  // one deadline per write: an idle timeout, not a total one
    size_t n = 0;
    const ErrorCode ec = RunWithTimeout(options.io_timeout, [&](std::optional<ErrorCode>& done) {
      stream.async_write_some(asio::buffer(data.data() + sent, data.size() - sent),
                              [&](const ErrorCode& e, size_t k) {
                                done = e;
                                n = k;
                              });
    });
    if (ec) return Fail(ec, "send to");
    sent += n;
  }
  return Status::Ok();
}

Status ChannelImpl::Flush() {
  RETURN_IF_ERROR(Usable());
  // wbuf holds frames smaller than kWriteBuffer only (larger ones bypass it), so it never grows
  // past twice that and is kept for the next frames.
  Status s = WriteAll(wbuf);
  wbuf.clear();
  return s;
}

Status ChannelImpl::Fill() {
  size_t n = 0;
  const ErrorCode ec = RunWithTimeout(options.io_timeout, [&](std::optional<ErrorCode>& done) {
    stream.async_read_some(asio::buffer(rbuf), [&](const ErrorCode& e, size_t k) {
      done = e;
      n = k;
    });
  });
  if (ec) {
    return Fail(ec, "receive from");
  }
  rpos = 0;
  rend = n;
  return Status::Ok();
}

Result<Frame> ChannelImpl::Receive() {
  RETURN_IF_ERROR(Usable());
  while (true) {
    if (rpos < rend) {
      size_t used = 0;
      FrameDecoder::Out out =
          decoder.Feed(std::string_view(rbuf.data() + rpos, rend - rpos), &used);
      rpos += used;
      if (out.kind == FrameDecoder::Out::kFrame) {
        return Frame{out.type, std::move(out.payload)};
      }
      if (out.kind == FrameDecoder::Out::kError) {
        broken = out.error.WithContext("receive from " + remote_address);
        return broken;
      }
    }
    RETURN_IF_ERROR(Flush());  // the peer may be waiting for what we queued
    RETURN_IF_ERROR(Fill());
  }
}

void ChannelImpl::CloseSocket() {
  std::lock_guard<std::mutex> lock(mu);
  if (closed) {
    return;
  }
  closed = true;
  ErrorCode ignored;
  socket().shutdown(tcp::socket::shutdown_both, ignored);
  socket().close(ignored);
}

void ChannelImpl::Interrupt() {
  interrupted.store(true);
  std::lock_guard<std::mutex> lock(mu);
  if (!closed && fd >= 0) {
    // Only the kernel socket is touched, never the Asio objects the owner thread is using.
    ::shutdown(fd, SHUT_RDWR);
  }
}

namespace {

Status ConnectTcp(ChannelImpl& impl, const std::string& host, uint16_t port,
                  std::chrono::milliseconds timeout) {
  ErrorCode ec;
  tcp::resolver resolver(impl.io);
  const auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec) {
    return UnavailableError("resolve " + host + ": " + ec.message());
  }
  ec = impl.RunWithTimeout(timeout, [&](std::optional<ErrorCode>& done) {
    asio::async_connect(impl.socket(), endpoints,
                        [&done](const ErrorCode& e, const tcp::endpoint&) { done = e; });
  });
  const std::string where = host + ":" + std::to_string(port);
  if (ec == asio::error::timed_out) {
    return UnavailableError("connect to " + where + " timed out after " + Millis(timeout));
  }
  if (ec) {
    return UnavailableError("connect to " + where + ": " + ec.message());
  }
  impl.Connected();
  return Status::Ok();
}

Result<std::unique_ptr<Channel>> ConnectImpl(const std::string& host, uint16_t port,
                                             std::shared_ptr<asio::ssl::context> tls,
                                             std::chrono::milliseconds timeout,
                                             const ChannelOptions& options) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto impl = std::make_unique<ChannelImpl>(std::move(tls), options);
  RETURN_IF_ERROR(ConnectTcp(*impl, host, port, timeout));
  RETURN_IF_ERROR(SetExpectedPeerHost(impl->stream.native_handle(), host));
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  RETURN_IF_ERROR(impl->Handshake(asio::ssl::stream_base::client,
                                  std::max(left, std::chrono::milliseconds(1))));
  return ChannelAccess::Wrap(std::move(impl));
}

}  // namespace
}  // namespace internal

Channel::Channel(std::unique_ptr<internal::ChannelImpl> impl) : impl_(std::move(impl)) {}
Channel::~Channel() { Close(); }

Status Channel::Send(uint16_t type, std::string_view payload) { return impl_->Send(type, payload); }
Status Channel::Flush() { return impl_->Flush(); }
Result<Frame> Channel::Receive() { return impl_->Receive(); }
const std::string& Channel::PeerName() const { return impl_->peer_name; }
const std::string& Channel::RemoteAddress() const { return impl_->remote_address; }
void Channel::Close() {
  if (impl_->Usable().ok() && !impl_->wbuf.empty()) (void)impl_->Flush();  // e.g. a last ERROR
  impl_->CloseSocket();
}
void Channel::Interrupt() { impl_->Interrupt(); }

Result<std::unique_ptr<Channel>> Connect(const std::string& host, uint16_t port,
                                         const TlsFiles& files, std::chrono::milliseconds timeout,
                                         const ChannelOptions& options) {
  ASSIGN_OR_RETURN(auto tls, MakeClientContext(files));
  return Connect(host, port, std::move(tls), timeout, options);
}

Result<std::unique_ptr<Channel>> Connect(const std::string& host, uint16_t port,
                                         std::shared_ptr<boost::asio::ssl::context> tls,
                                         std::chrono::milliseconds timeout,
                                         const ChannelOptions& options) {
  try {
    return internal::ConnectImpl(host, port, std::move(tls), timeout, options);
  } catch (const boost::system::system_error& e) {
    return UnavailableError("connect to " + host + ":" + std::to_string(port) + ": " + e.what());
  }
}

}  // namespace cyrsync::protocol
