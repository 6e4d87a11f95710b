// SessionPool: users share a kept session per slot; a kept session the daemon closed is
// replaced by a new one; sessions of different slots stay apart.
#include "snapshot/session_pool.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace cyrsync::snapshot {
namespace {

// Each connection is a pipe served by a thread that answers USER_STATE with synced_at = its
// connection number, and closes after `answers` replies.
class FakeDaemon {
 public:
  ~FakeDaemon() {
    for (auto& t : threads_) t.join();
  }
  int answers_per_connection = 100;
  int connections = 0;
  std::vector<std::string> asked;  // "conn:user"

  SlotConnector Connector() {
    return [this](const Slot&) -> Result<std::unique_ptr<protocol::Transport>> {
      auto [client, server] = protocol::MakePipePair();
      const int no = ++connections;
      const int limit = answers_per_connection;
      threads_.emplace_back([this, no, limit, t = std::move(server)]() mutable {
        for (int n = 0; n < limit; ++n) {
          auto f = t->Receive();
          if (!f.ok() || f->type != protocol::kUserState) return;
          asked.push_back(std::to_string(no) + ":" + *protocol::DecodeString(f->payload));
          protocol::UserState st;
          st.synced_at = no;
          if (!t->Send(protocol::kUserStateOk, protocol::Encode(st)).ok()) return;
          (void)t->Flush();
        }
        t->Close();
      });
      return std::move(client);
    };
  }

 private:
  std::vector<std::thread> threads_;
};

TEST(SessionPoolTest, UsersShareAKeptSessionAndAClosedOneIsReplaced) {
  FakeDaemon daemon;
  daemon.answers_per_connection = 2;
  const Slot replica{"h", 1, "replica", "d"}, master{"h", 2, "master", "d"};
  {
    SessionPool pool(daemon.Connector());
    auto a = pool.Open(replica, "alice");
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->state.synced_at, 1);
    pool.Keep(std::move(*a));
    auto b = pool.Open(replica, "bob");  // the kept session
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ(b->state.synced_at, 1);
    pool.Keep(std::move(*b));
    auto c = pool.Open(replica, "carol");  // the daemon closed connection 1: a new one
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(c->state.synced_at, 2);
    pool.Keep(std::move(*c));
    auto d = pool.Open(master, "dave");  // another slot: its own session
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->state.synced_at, 3);
    d->t->Close();  // not kept (say its exchange failed): the next user connects anew
    auto e = pool.Open(master, "erin");
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_EQ(e->state.synced_at, 4);
    e->t->Close();
  }
  EXPECT_EQ(daemon.connections, 4);
  EXPECT_EQ(daemon.asked, (std::vector<std::string>{"1:alice", "1:bob", "2:carol", "3:dave",
                                                    "4:erin"}));
}

TEST(SessionPoolTest, AFailedConnectIsTheError) {
  SessionPool pool([](const Slot&) -> Result<std::unique_ptr<protocol::Transport>> {
    return UnavailableError("connect refused");
  });
  const Slot replica{"h", 1, "replica", "d"};
  auto s = pool.Open(replica, "alice");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnavailable);
}

}  // namespace
}  // namespace cyrsync::snapshot
