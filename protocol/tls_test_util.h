// Test-only helpers for the protocol tests: a throw-away PKI in a temp dir and a raw TLS client
// that can send arbitrary bytes (or present no certificate) to exercise the server's rejections.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <string>

#include "protocol/pki.h"
#include "protocol/tls.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::protocol::testing {

// CA "test-ca" with a replica certificate for 127.0.0.1/localhost, a syncer certificate, a
// certificate for another host name, and an intruder certificate from a second CA.
struct TestPki {
  TestPki() {
    const std::string ca = dir.Sub("ca");
    const std::string other_ca = dir.Sub("other-ca");
    const std::string certs = dir.Sub("certs");
    status = CreateCa(ca, "test-ca");
    if (status.ok()) status = CreateCa(other_ca, "other-ca");
    if (status.ok()) status = IssueCertificate(ca, "replica", {"127.0.0.1", "localhost"}, certs);
    if (status.ok()) status = IssueCertificate(ca, "syncer", {}, certs);
    if (status.ok()) status = IssueCertificate(ca, "elsewhere", {"other.example"}, certs);
    if (status.ok()) status = IssueCertificate(other_ca, "intruder", {"127.0.0.1"}, certs);
    replica = Files(ca, certs, "replica");
    syncer = Files(ca, certs, "syncer");
    elsewhere = Files(ca, certs, "elsewhere");
    intruder = Files(ca, certs, "intruder");
  }

  static TlsFiles Files(const std::string& ca, const std::string& certs, const std::string& n) {
    return TlsFiles{ca + "/ca.crt", certs + "/" + n + ".crt", certs + "/" + n + ".key"};
  }

  cyrsync::testing::TempDir dir;
  Status status;
  TlsFiles replica, syncer, elsewhere, intruder;
};

// A plain Asio TLS client with blocking calls. With an empty cert_file it presents no
// certificate. Tests only: its calls have no timeouts.
class RawTlsClient {
 public:
  RawTlsClient(const std::string& ca_file, const std::string& cert_file,
               const std::string& key_file)
      : ctx_(boost::asio::ssl::context::tls_client) {
    ctx_.load_verify_file(ca_file);
    if (!cert_file.empty()) {
      ctx_.use_certificate_chain_file(cert_file);
      ctx_.use_private_key_file(key_file, boost::asio::ssl::context::pem);
    }
    ctx_.set_verify_mode(boost::asio::ssl::verify_peer);
    // Created last: SSL_new copies the context's certificate at construction.
    stream_ = std::make_unique<Stream>(io_, ctx_);
  }

  boost::system::error_code Connect(uint16_t port) {
    boost::system::error_code ec;
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), port);
    stream_->next_layer().connect(ep, ec);
    if (!ec) stream_->handshake(boost::asio::ssl::stream_base::client, ec);
    return ec;
  }

  boost::system::error_code Write(const std::string& bytes) {
    boost::system::error_code ec;
    boost::asio::write(*stream_, boost::asio::buffer(bytes), ec);
    return ec;
  }

  // Reads until the connection fails; returns the error that ended it.
  boost::system::error_code ReadUntilError() {
    boost::system::error_code ec;
    char buf[4096];
    while (!ec) {
      stream_->read_some(boost::asio::buffer(buf), ec);
    }
    return ec;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ssl::context ctx_;
  using Stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;
  std::unique_ptr<Stream> stream_;
};

}  // namespace cyrsync::protocol::testing
