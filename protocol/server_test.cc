#include "protocol/server.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <atomic>
#include <future>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/bytes.h"
#include "protocol/tls_test_util.h"

namespace cyrsync::protocol {
namespace {

using namespace std::chrono_literals;
using testing::RawTlsClient;
using testing::TestPki;

// Echoes every frame back with type + 1 until the channel fails.
void Echo(Channel& channel) {
  while (true) {
    Result<Frame> f = channel.Receive();
    if (!f.ok() || !channel.Send(static_cast<uint16_t>(f->type + 1), f->payload).ok()) {
      return;
    }
  }
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new TestPki(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(pki_->status.ok()) << pki_->status.ToString();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text_);
    logger_ = std::make_shared<spdlog::logger>("protocol-test", sink);
    logger_->set_level(spdlog::level::trace);
  }

  void TearDown() override {
    if (server_) {
      server_->Stop();
    }
    if (runner_.joinable()) {
      runner_.join();
    }
  }

  void Start(std::function<void(Channel&)> handler, ServerOptions options = {}) {
    auto listener = Listener::Bind("127.0.0.1", 0, pki_->replica);
    ASSERT_TRUE(listener.ok()) << listener.error().ToString();
    server_ =
        std::make_unique<Server>(std::move(listener).value(), std::move(handler), logger_, options);
    runner_ = std::thread([this] { server_->Run(); });
  }

  Result<std::unique_ptr<Channel>> Dial(const TlsFiles& files,
                                        std::chrono::milliseconds timeout = 10s) {
    return Connect("127.0.0.1", server_->port(), files, timeout);
  }

  // Waits (bounded) until the server serves n connections.
  bool WaitForActive(size_t n) {
    for (int i = 0; i < 2000; ++i) {
      if (server_->active_connections() == n) {
        return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  static void ExpectEcho(Channel& channel, const std::string& payload) {
    ASSERT_TRUE(channel.Send(1, payload).ok());
    Result<Frame> reply = channel.Receive();
    ASSERT_TRUE(reply.ok()) << reply.error().ToString();
    EXPECT_EQ(reply->type, 2);
    EXPECT_EQ(reply->payload, payload);
  }

  static TestPki* pki_;
  std::ostringstream log_text_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<Server> server_;
  std::thread runner_;
};

TestPki* ServerTest::pki_ = nullptr;

TEST_F(ServerTest, ServesConcurrentClients) {
  ASSERT_NO_FATAL_FAILURE(Start(Echo));
  std::vector<std::unique_ptr<Channel>> clients;
  for (int i = 0; i < 3; ++i) {
    auto c = Dial(pki_->syncer);
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    clients.push_back(std::move(c).value());
  }
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < clients.size(); ++i) {
      ExpectEcho(*clients[i], "client " + std::to_string(i));
    }
  }
  EXPECT_TRUE(WaitForActive(3));
  clients.clear();
  EXPECT_TRUE(WaitForActive(0));
  logger_->flush();
  EXPECT_NE(log_text_.str().find("connection accepted peer=syncer addr=127.0.0.1:"),
            std::string::npos)
      << log_text_.str();
}

TEST_F(ServerTest, StopReturnsPromptlyWhileClientIsIdle) {
  ASSERT_NO_FATAL_FAILURE(Start(Echo));
  auto client = Dial(pki_->syncer);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  ASSERT_TRUE(WaitForActive(1));
  auto stopping = std::async(std::launch::async, [this] { server_->Stop(); });
  ASSERT_EQ(stopping.wait_for(20s), std::future_status::ready) << "Stop() hung";
  runner_.join();
  EXPECT_EQ(server_->active_connections(), 0u);
  Result<Frame> f = (*client)->Receive();
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), Code::kUnavailable) << f.error().ToString();
}

TEST_F(ServerTest, StopBeforeRunMakesRunReturn) {
  auto listener = Listener::Bind("127.0.0.1", 0, pki_->replica);
  ASSERT_TRUE(listener.ok());
  Server server(std::move(listener).value(), Echo, logger_);
  server.Stop();
  server.Run();  // returns at once
}

TEST_F(ServerTest, HandshakeFailureIsLoggedAndAcceptingContinues) {
  ASSERT_NO_FATAL_FAILURE(Start(Echo));
  auto intruder = Dial(pki_->intruder);
  if (intruder.ok()) {
    EXPECT_FALSE((*intruder)->Receive().ok());
  }
  auto client = Dial(pki_->syncer);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  ExpectEcho(**client, "still serving");
  logger_->flush();
  EXPECT_NE(log_text_.str().find("tls handshake failed error=permission_denied"), std::string::npos)
      << log_text_.str();
}

TEST_F(ServerTest, HandlerSeesCorruptionForOversizedFrameHeader) {
  std::promise<Status> seen;
  ASSERT_NO_FATAL_FAILURE(
      Start([&seen](Channel& channel) { seen.set_value(channel.Receive().status()); }));
  RawTlsClient raw(pki_->syncer.ca_file, pki_->syncer.cert_file, pki_->syncer.key_file);
  ASSERT_FALSE(raw.Connect(server_->port()));
  std::string header;
  AppendBE32(&header, 0xffffffffu);
  AppendBE16(&header, 1);
  AppendBE16(&header, 0);
  ASSERT_FALSE(raw.Write(header));
  auto status = seen.get_future();
  ASSERT_EQ(status.wait_for(20s), std::future_status::ready);
  Status st = status.get();
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  EXPECT_TRUE(raw.ReadUntilError()) << "the peer gets an error: its connection is closed";
}

TEST_F(ServerTest, HandlerExceptionEndsOnlyThatConnection) {
  std::atomic<int> calls{0};
  ASSERT_NO_FATAL_FAILURE(Start([&calls](Channel& channel) {
    if (calls.fetch_add(1) == 0) {
      throw std::runtime_error("boom");
    }
    Echo(channel);
  }));
  auto first = Dial(pki_->syncer);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE((*first)->Receive().ok());
  auto second = Dial(pki_->syncer);
  ASSERT_TRUE(second.ok());
  ExpectEcho(**second, "after exception");
  logger_->flush();
  EXPECT_NE(log_text_.str().find("connection handler failed"), std::string::npos);
}

TEST_F(ServerTest, ConnectionLimitQueuesExtraClients) {
  ServerOptions options;
  options.max_connections = 1;
  ASSERT_NO_FATAL_FAILURE(Start(Echo, options));
  auto first = Dial(pki_->syncer);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(WaitForActive(1));
  // The server does not accept while full, so this client's handshake cannot complete.
  auto queued = Dial(pki_->syncer, 300ms);
  ASSERT_FALSE(queued.ok());
  EXPECT_EQ(queued.error().code(), Code::kUnavailable) << queued.error().ToString();
  (*first)->Close();
  auto later = Dial(pki_->syncer);
  ASSERT_TRUE(later.ok()) << later.error().ToString();
  ExpectEcho(**later, "a slot was freed");
}

}  // namespace
}  // namespace cyrsync::protocol
