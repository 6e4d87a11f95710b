#include "protocol/channel.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "common/bytes.h"
#include "protocol/tls_test_util.h"

namespace cyrsync::protocol {
namespace {

using namespace std::chrono_literals;
using testing::RawTlsClient;
using testing::TestPki;
using ChannelResult = Result<std::unique_ptr<Channel>>;

constexpr auto kWait = 20s;  // generous bound on anything that should be prompt

class ChannelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new TestPki(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(pki_->status.ok()) << pki_->status.ToString(); }

  std::unique_ptr<Listener> Listen(const ListenerOptions& options = {},
                                   const TlsFiles* files = nullptr) {
    auto listener = Listener::Bind("127.0.0.1", 0, files ? *files : pki_->replica, options);
    EXPECT_TRUE(listener.ok()) << listener.error().ToString();
    return listener.ok() ? std::move(listener).value() : nullptr;
  }

  static std::future<ChannelResult> AcceptAsync(Listener& listener) {
    return std::async(std::launch::async, [&listener] { return listener.Accept(); });
  }

  static ChannelResult Dial(uint16_t port, const TlsFiles& files, const ChannelOptions& opts = {}) {
    return Connect("127.0.0.1", port, files, 10s, opts);
  }

  static ChannelResult Get(std::future<ChannelResult>& f) {
    if (f.wait_for(kWait) != std::future_status::ready) {
      ADD_FAILURE() << "operation did not finish within the bound";
    }
    return f.get();
  }

  static TestPki* pki_;
};

TestPki* ChannelTest::pki_ = nullptr;

TEST_F(ChannelTest, ExchangesFramesBothWays) {
  auto listener = Listen();
  ASSERT_TRUE(listener);
  ASSERT_NE(listener->port(), 0);
  auto accepted = AcceptAsync(*listener);
  ChannelResult client = Dial(listener->port(), pki_->syncer);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  ChannelResult server = Get(accepted);
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  EXPECT_EQ((*client)->PeerName(), "replica");
  EXPECT_EQ((*server)->PeerName(), "syncer");
  EXPECT_NE((*server)->RemoteAddress().find("127.0.0.1:"), std::string::npos);

  const std::string big(1 << 20, 'z');
  std::thread echo([&] {
    for (int i = 0; i < 3; ++i) {
      Result<Frame> f = (*server)->Receive();
      ASSERT_TRUE(f.ok()) << f.error().ToString();
      ASSERT_TRUE((*server)->Send(static_cast<uint16_t>(f->type + 1), f->payload).ok());
    }
  });
  for (const std::string& payload : {std::string("hello"), std::string(), big}) {
    ASSERT_TRUE((*client)->Send(10, payload).ok());
    Result<Frame> reply = (*client)->Receive();
    ASSERT_TRUE(reply.ok()) << reply.error().ToString();
    EXPECT_EQ(reply->type, 11);
    EXPECT_EQ(reply->payload, payload);
  }
  echo.join();
}

TEST_F(ChannelTest, ClientWithCertificateFromOtherCaIsRejected) {
  auto listener = Listen();
  ASSERT_TRUE(listener);
  auto accepted = AcceptAsync(*listener);
  ChannelResult client = Dial(listener->port(), pki_->intruder);
  ChannelResult server = Get(accepted);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code(), Code::kPermissionDenied) << server.error().ToString();
  EXPECT_NE(server.error().message().find("127.0.0.1:"), std::string::npos);
  if (client.ok()) {  // TLS 1.3: the client learns of the rejection on its first read
    Result<Frame> f = (*client)->Receive();
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code(), Code::kPermissionDenied) << f.error().ToString();
  } else {
    EXPECT_EQ(client.error().code(), Code::kPermissionDenied) << client.error().ToString();
  }
}

TEST_F(ChannelTest, ClientWithoutCertificateIsRejected) {
  auto listener = Listen();
  ASSERT_TRUE(listener);
  auto accepted = AcceptAsync(*listener);
  RawTlsClient raw(pki_->syncer.ca_file, "", "");
  boost::system::error_code ec = raw.Connect(listener->port());
  if (!ec) {
    ec = raw.ReadUntilError();
  }
  EXPECT_TRUE(ec);
  ChannelResult server = Get(accepted);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code(), Code::kPermissionDenied) << server.error().ToString();
}

TEST_F(ChannelTest, ServerCertificateForOtherHostIsRejected) {
  auto listener = Listen({}, &pki_->elsewhere);
  ASSERT_TRUE(listener);
  auto accepted = AcceptAsync(*listener);
  ChannelResult client = Dial(listener->port(), pki_->syncer);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code(), Code::kPermissionDenied) << client.error().ToString();
  EXPECT_FALSE(Get(accepted).ok());
}

TEST_F(ChannelTest, ConnectToClosedPortIsUnavailable) {
  uint16_t port = 0;
  {
    auto listener = Listen();
    ASSERT_TRUE(listener);
    port = listener->port();
  }
  ChannelResult client = Dial(port, pki_->syncer);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code(), Code::kUnavailable) << client.error().ToString();
}

TEST_F(ChannelTest, BadTlsFilesAreInvalidArgument) {
  TlsFiles files = pki_->syncer;
  files.key_file = pki_->replica.key_file;  // does not match the certificate
  ChannelResult client = Dial(1, files);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code(), Code::kInvalidArgument) << client.error().ToString();
  files.ca_file = "/nonexistent/ca.crt";
  auto listener = Listener::Bind("127.0.0.1", 0, files);
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.error().code(), Code::kInvalidArgument);
}

// Accepts one connection, then has a raw client with a valid certificate send `bytes`; returns
// what the server's Receive reported.
Status ServerReceiveAfterRawBytes(Listener& listener, const TlsFiles& files,
                                  const std::string& bytes) {
  auto accepted = std::async(std::launch::async, [&listener] { return listener.Accept(); });
  RawTlsClient raw(files.ca_file, files.cert_file, files.key_file);
  EXPECT_FALSE(raw.Connect(listener.port()));
  EXPECT_FALSE(raw.Write(bytes));
  ChannelResult server = accepted.get();
  if (!server.ok()) {
    return server.error();
  }
  Result<Frame> f = (*server)->Receive();
  (*server)->Close();
  EXPECT_TRUE(raw.ReadUntilError()) << "the client must see the connection end";
  return f.status();
}

TEST_F(ChannelTest, OversizedFrameHeaderIsCorruption) {
  auto listener = Listen();
  ASSERT_TRUE(listener);
  std::string header;
  AppendBE32(&header, (8u << 20) + 1);
  AppendBE16(&header, 1);
  AppendBE16(&header, 0);
  Status st = ServerReceiveAfterRawBytes(*listener, pki_->syncer, header);
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("exceeds limit"), std::string::npos) << st.ToString();
}

TEST_F(ChannelTest, CrcMismatchIsCorruption) {
  auto listener = Listen();
  ASSERT_TRUE(listener);
  std::string frame = EncodeFrame(1, "payload");
  frame.back() ^= 0x40;
  Status st = ServerReceiveAfterRawBytes(*listener, pki_->syncer, frame);
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
}

class ConnectedChannelTest : public ChannelTest {
 protected:
  void Open(const ListenerOptions& options = {}, const ChannelOptions& client_options = {}) {
    listener_ = Listen(options);
    ASSERT_TRUE(listener_);
    auto accepted = AcceptAsync(*listener_);
    ChannelResult client = Dial(listener_->port(), pki_->syncer, client_options);
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    ChannelResult server = Get(accepted);
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    client_ = std::move(client).value();
    server_ = std::move(server).value();
  }

  std::unique_ptr<Listener> listener_;
  std::unique_ptr<Channel> client_;
  std::unique_ptr<Channel> server_;
};

TEST_F(ConnectedChannelTest, IdleTimeoutEndsReceive) {
  ListenerOptions options;
  options.channel.io_timeout = 200ms;
  ASSERT_NO_FATAL_FAILURE(Open(options));
  Result<Frame> f = server_->Receive();
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), Code::kUnavailable);
  EXPECT_NE(f.error().message().find("no progress"), std::string::npos) << f.error().ToString();
  EXPECT_EQ(server_->Send(1, "x").code(), Code::kUnavailable) << "a timed-out channel is broken";
}

TEST_F(ConnectedChannelTest, InterruptUnblocksReceiveFromAnotherThread) {
  ASSERT_NO_FATAL_FAILURE(Open());
  auto receiving = std::async(std::launch::async, [&] { return server_->Receive(); });
  server_->Interrupt();
  ASSERT_EQ(receiving.wait_for(kWait), std::future_status::ready);
  Result<Frame> f = receiving.get();
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), Code::kUnavailable);
  EXPECT_EQ(server_->Send(1, "x").code(), Code::kUnavailable);
  EXPECT_FALSE(client_->Receive().ok()) << "the peer sees the connection end";
}

TEST_F(ConnectedChannelTest, PeerCloseIsUnavailable) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_TRUE(client_->Send(5, "last").ok());
  client_->Close();
  Result<Frame> f = server_->Receive();
  ASSERT_TRUE(f.ok()) << "frames sent before the close still arrive";
  EXPECT_EQ(f->payload, "last");
  f = server_->Receive();
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), Code::kUnavailable) << f.error().ToString();
  EXPECT_EQ(client_->Send(1, "x").code(), Code::kUnavailable);
}

TEST_F(ConnectedChannelTest, QueuedFramesAreWrittenWhenTheBufferFillsOrOnFlush) {
  ASSERT_NO_FATAL_FAILURE(Open());
  // 100 x 1 KiB exceed the 64 KiB send buffer: the first frames go out without a Flush.
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(client_->Send(7, std::string(1024, static_cast<char>('a' + i % 26))).ok());
  }
  for (int i = 0; i < 50; ++i) {
    Result<Frame> f = server_->Receive();
    ASSERT_TRUE(f.ok()) << f.error().ToString();
    EXPECT_EQ(f->payload[0], static_cast<char>('a' + i % 26));
  }
  ASSERT_TRUE(client_->Flush().ok());
  for (int i = 50; i < 100; ++i) {
    Result<Frame> f = server_->Receive();
    ASSERT_TRUE(f.ok()) << f.error().ToString();
    EXPECT_EQ(f->payload[0], static_cast<char>('a' + i % 26));
  }
}

TEST_F(ConnectedChannelTest, SendOverLimitIsInvalidArgumentAndChannelStaysUsable) {
  ChannelOptions small;
  small.max_payload = 16;
  ASSERT_NO_FATAL_FAILURE(Open({}, small));
  EXPECT_EQ(client_->Send(1, std::string(17, 'a')).code(), Code::kInvalidArgument);
  ASSERT_TRUE(client_->Send(1, std::string(16, 'a')).ok());
  ASSERT_TRUE(client_->Flush().ok());
  Result<Frame> f = server_->Receive();
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->payload.size(), 16u);
}

TEST_F(ChannelTest, ListenerCloseUnblocksAccept) {
  auto listener = Listen();
  ASSERT_TRUE(listener);
  auto accepted = AcceptAsync(*listener);
  listener->Close();
  ChannelResult r = Get(accepted);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kAborted);
  EXPECT_EQ(listener->Accept().error().code(), Code::kAborted);
}

TEST_F(ChannelTest, ListenerCloseUnblocksHandshake) {
  auto listener = Listen();
  ASSERT_TRUE(listener);
  auto accepted = AcceptAsync(*listener);
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket silent(io);
  silent.connect({boost::asio::ip::make_address("127.0.0.1"), listener->port()});
  std::this_thread::sleep_for(50ms);  // usually lets Accept reach the handshake; either way works
  listener->Close();
  ChannelResult r = Get(accepted);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kAborted) << r.error().ToString();
}

TEST_F(ChannelTest, HandshakeTimeoutThenKeepsAccepting) {
  ListenerOptions options;
  options.handshake_timeout = 200ms;
  auto listener = Listen(options);
  ASSERT_TRUE(listener);
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket silent(io);
  silent.connect({boost::asio::ip::make_address("127.0.0.1"), listener->port()});
  ChannelResult r = listener->Accept();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kUnavailable);
  EXPECT_NE(r.error().message().find("timed out"), std::string::npos) << r.error().ToString();

  auto accepted = AcceptAsync(*listener);
  ChannelResult client = Dial(listener->port(), pki_->syncer);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  EXPECT_TRUE(Get(accepted).ok());
}

TEST_F(ChannelTest, ConnectTimesOutWhenServerNeverHandshakes) {
  auto listener = Listen();  // nobody calls Accept: the connection waits in the backlog
  ASSERT_TRUE(listener);
  ChannelResult client = Connect("127.0.0.1", listener->port(), pki_->syncer, 200ms);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code(), Code::kUnavailable);
  EXPECT_NE(client.error().message().find("timed out"), std::string::npos)
      << client.error().ToString();
}

}  // namespace
}  // namespace cyrsync::protocol
