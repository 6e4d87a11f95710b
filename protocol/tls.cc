#include "protocol/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/system/system_error.hpp>

namespace cyrsync::protocol {
namespace {

namespace ssl = boost::asio::ssl;

// Wraps the asio call that loads one file so a failure names the file and is not an exception.
template <typename Fn>
Status LoadFile(const char* what, const std::string& path, Fn&& fn) {
  if (path.empty()) {
    return InvalidArgumentError(std::string("tls ") + what + " path is empty");
  }
  boost::system::error_code ec;
  fn(ec);
  if (ec) {
    return InvalidArgumentError(std::string("tls ") + what + " " + path + ": " + ec.message());
  }
  return Status::Ok();
}

Status Configure(ssl::context& ctx, const TlsFiles& files, bool server) {
  SSL_CTX* native = ctx.native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    return InternalError("tls: cannot set minimum protocol version");
  }
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression);
  RETURN_IF_ERROR(LoadFile("ca file", files.ca_file,
                           [&](auto& ec) { ctx.load_verify_file(files.ca_file, ec); }));
  RETURN_IF_ERROR(LoadFile("certificate file", files.cert_file,
                           [&](auto& ec) { ctx.use_certificate_chain_file(files.cert_file, ec); }));
  RETURN_IF_ERROR(LoadFile("key file", files.key_file, [&](auto& ec) {
    ctx.use_private_key_file(files.key_file, ssl::context::pem, ec);
  }));
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return InvalidArgumentError("tls key file " + files.key_file + " does not match certificate " +
                                files.cert_file);
  }
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  if (server) {
    // Tells clients which CA we accept, and is required for session resumption with client certs.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(native, names);
    }
    static const unsigned char kSessionContext[] = "cyrsync";
    SSL_CTX_set_session_id_context(native, kSessionContext, sizeof(kSessionContext) - 1);
  }
  ERR_clear_error();
  return Status::Ok();
}

Result<std::shared_ptr<ssl::context>> MakeContext(const TlsFiles& files, bool server) {
  try {
    auto ctx = std::make_shared<ssl::context>(server ? ssl::context::tls_server
                                                     : ssl::context::tls_client);
    RETURN_IF_ERROR(Configure(*ctx, files, server));
    return ctx;
  } catch (const boost::system::system_error& e) {
    return InternalError(std::string("tls: cannot create context: ") + e.what());
  }
}

}  // namespace

Result<std::shared_ptr<ssl::context>> MakeClientContext(const TlsFiles& files) {
  return MakeContext(files, /*server=*/false);
}

Result<std::shared_ptr<ssl::context>> MakeServerContext(const TlsFiles& files) {
  return MakeContext(files, /*server=*/true);
}

Result<std::string> PeerCommonName(const SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) {
    return PermissionDeniedError("tls peer presented no certificate");
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  const int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx < 0) {
    return NotFoundError("tls peer certificate has no commonName");
  }
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) {
    return NotFoundError("tls peer certificate commonName is not valid text");
  }
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return cn;
}

Status SetExpectedPeerHost(SSL* ssl, const std::string& host) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  unsigned char addr[16];
  const bool is_ip =
      inet_pton(AF_INET, host.c_str(), addr) == 1 || inet_pton(AF_INET6, host.c_str(), addr) == 1;
  if (is_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
      ERR_clear_error();
      return InvalidArgumentError("tls: cannot verify against address " + host);
    }
    return Status::Ok();
  }
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) != 1 ||
      SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) {
    ERR_clear_error();
    return InvalidArgumentError("tls: cannot verify against host name " + host);
  }
  return Status::Ok();
}

}  // namespace cyrsync::protocol
