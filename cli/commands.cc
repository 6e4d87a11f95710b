#include "cli/commands.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "common/log.h"
#include "cyrus/config.h"
#include "protocol/channel.h"
#include "protocol/channel_transport.h"
#include "protocol/pki.h"
#include "replica/service.h"
#include "replica/store.h"
#include "syncer/syncer.h"

namespace cyrsync::cli {
namespace {

Result<std::pair<std::string, uint16_t>> SplitHostPort(const std::string& hp) {
  auto colon = hp.rfind(':');
  if (colon == std::string::npos) return InvalidArgumentError("expected HOST:PORT, got " + hp);
  int port = std::atoi(hp.c_str() + colon + 1);
  if (port < 0 || port > 65535) return InvalidArgumentError("bad port in " + hp);
  return std::make_pair(hp.substr(0, colon), static_cast<uint16_t>(port));
}

int Fail(spdlog::logger& log, const std::string& what, const Status& st) {
  log.error("{} error=\"{}\"", what, st.ToString());
  return st.code() == Code::kFailedPrecondition ? 3 : 1;
}

void LogStats(spdlog::logger& log, const syncer::PassStats& s, double secs) {
  log.info(
      "sync pass done replica={} folders={} changed={} checked={} failed={} missing={} "
      "deleted={} unsettled={} unlisted={} messages={} vanished={} bytes={} server_files={} "
      "server_files_removed={} seconds={:.3f}",
      s.replica_instance, s.folders, s.folders_changed, s.folders_checked, s.folders_failed,
      s.folders_missing, s.folders_deleted, s.folders_unsettled, s.folders_unlisted,
      s.messages_sent, s.messages_vanished, s.bytes_sent, s.server_files_copied,
      s.server_files_removed, secs);
}

Result<Owner> LookupOwner(const std::string& user) {
  struct passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) return NotFoundError("no such user: " + user);
  return Owner{true, pw->pw_uid, pw->pw_gid};
}

// Blocks SIGINT/SIGTERM in every thread and stops the service from a dedicated waiter.
std::thread StopOnSignal(replica::Service* svc) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return std::thread([set, svc] {
    int sig = 0;
    sigwait(&set, &sig);
    svc->Stop();
  });
}

}  // namespace

int RunSync(const SyncArgs& a) {
  auto log = MakeLogger("syncer");
  auto conf = cyrus::LoadImapdConf(Env::Default(), a.imapd_conf);
  if (!conf.ok()) return Fail(*log, "cannot read imapd.conf", conf.error());
  auto hp = SplitHostPort(a.replica);
  if (!hp.ok()) return Fail(*log, "bad --replica", hp.error());
  auto tls = protocol::MakeClientContext(a.tls);
  if (!tls.ok()) return Fail(*log, "cannot set up TLS", tls.error());
  syncer::Connector connect = [&]() -> Result<std::unique_ptr<protocol::Transport>> {
    ASSIGN_OR_RETURN(auto ch, protocol::Connect(hp->first, hp->second, *tls,
                                                std::chrono::seconds(30)));
    return std::unique_ptr<protocol::Transport>(new protocol::ChannelTransport(std::move(ch)));
  };
  syncer::Syncer syncer(Env::Default(), *conf, a.opts, connect, log);
  while (true) {
    auto t0 = std::chrono::steady_clock::now();
    auto stats = syncer.RunPass();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!stats.ok()) {
      if (a.every_seconds == 0) return Fail(*log, "sync pass failed", stats.error());
      log->error("sync pass failed error=\"{}\"", stats.error().ToString());
    } else {
      LogStats(*log, *stats, secs);
      if (a.every_seconds == 0) return stats->folders_failed == 0 ? 0 : 2;
    }
    std::this_thread::sleep_for(std::chrono::seconds(a.every_seconds));
  }
}

int RunServe(const ServeArgs& a) {
  auto log = MakeLogger("replica");
  auto conf = cyrus::LoadImapdConf(Env::Default(), a.imapd_conf);
  if (!conf.ok()) return Fail(*log, "cannot read imapd.conf", conf.error());
  replica::StoreOptions so;
  so.state_dir = a.state_dir;
  so.cyrus_pidfile = a.cyrus_pidfile;
  so.read_only = a.read_only;
  so.stat_threads = a.stat_threads;
  so.watch_changes = !a.no_watch && !a.recover_only;  // recover only rolls journals forward
  so.allow_restore = a.allow_restore;
  so.tools = {a.cyrus_bin, a.imapd_conf};
  auto owner = LookupOwner(a.cyrus_user);
  if (!owner.ok()) return Fail(*log, "cannot find the Cyrus user", owner.error());
  so.owner = *owner;
  auto store = replica::Store::Open(Env::Default(), *conf, so, log);
  if (!store.ok()) return Fail(*log, "cannot open the replica store", store.error());
  if (a.recover_only) {
    log->info("replica recovered instance={}", (*store)->instance_id());
    return 0;
  }
  auto hp = SplitHostPort(a.listen);
  if (!hp.ok()) return Fail(*log, "bad --listen", hp.error());
  auto listener = protocol::Listener::Bind(hp->first, hp->second, a.tls);
  if (!listener.ok()) return Fail(*log, "cannot listen", listener.error());
  replica::Service svc(**store, std::move(*listener), log);
  std::thread waiter = StopOnSignal(&svc);
  log->info("replica listening address={} port={} instance={}", hp->first, svc.port(),
            (*store)->instance_id());
  svc.Run();
  waiter.detach();
  log->info("replica stopped");
  return 0;
}

int RunCaInit(const CaArgs& a) {
  auto log = MakeLogger("ca");
  Status st = protocol::CreateCa(a.dir, a.name.empty() ? "cyrsync CA" : a.name);
  if (!st.ok()) return Fail(*log, "cannot create the CA", st);
  log->info("ca created dir={}", a.dir);
  return 0;
}

int RunCaIssue(const CaArgs& a) {
  auto log = MakeLogger("ca");
  Status st = protocol::IssueCertificate(a.dir, a.name, a.hosts, a.dir);
  if (!st.ok()) return Fail(*log, "cannot issue the certificate", st);
  log->info("certificate issued name={} dir={}", a.name, a.dir);
  return 0;
}

}  // namespace cyrsync::cli
