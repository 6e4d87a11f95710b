// TLS configuration for cyrsync connections: mutual authentication against the site's private CA
// only (no system trust store), TLS 1.2 or newer. The contexts returned here are immutable after
// construction and may be shared by any number of connections and threads.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "common/status.h"

namespace cyrsync::protocol {

// PEM files: the CA that signs every peer, our certificate (chain) and its private key.
struct TlsFiles {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

// Builds a context for the connecting side (the syncer) or the accepting side (the replica).
// Both require the peer to present a certificate that chains to ca_file and fail the handshake
// otherwise. Returns kInvalidArgument when a file is missing, unreadable or malformed, or when
// the key does not match the certificate (the message names the file and OpenSSL's reason).
Result<std::shared_ptr<boost::asio::ssl::context>> MakeClientContext(const TlsFiles& files);
Result<std::shared_ptr<boost::asio::ssl::context>> MakeServerContext(const TlsFiles& files);

// Returns the commonName of the certificate the peer presented on a handshaken connection.
// kPermissionDenied when there is no peer certificate, kNotFound when it has no commonName.
// REQUIRES: ssl != nullptr and its handshake has completed.
Result<std::string> PeerCommonName(const SSL* ssl);

// Makes the client's handshake also check that the server certificate's subjectAltName covers
// host (a DNS name, or an IP address literal matched against IP SANs), and sends SNI for DNS
// names. Returns kInvalidArgument when OpenSSL refuses the name.
// REQUIRES: called before the handshake.
Status SetExpectedPeerHost(SSL* ssl, const std::string& host);

}  // namespace cyrsync::protocol
