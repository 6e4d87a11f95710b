#include "snapshot/runner.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "protocol/channel.h"
#include "protocol/channel_transport.h"
#include "cyrus/index.h"
#include "protocol/messages.h"
#include "snapshot/guid_map.h"
#include "snapshot/session_pool.h"

namespace cyrsync::snapshot {
namespace {

using Session = ReadSession;

// The replica unless told otherwise; the master when the replica is unreachable or lags and
// the configuration allows the fallback.
Result<Session> ChooseSlot(Env* env, const SnapshotConfig& conf, SessionPool& pool,
                           const std::string& user, const std::string& from, std::string* note) {
  const StoreSlots* store = conf.StoreOf(user);
  if (!store) return InvalidArgumentError("no store configured for user " + user);
  std::string want = from.empty() ? conf.default_from : from;
  const Slot* master = store->Find("master");
  const Slot* replica = store->Find("replica");
  if (want == "master" || !replica) {
    if (!master) return InvalidArgumentError("no master slot for user " + user);
    return pool.Open(*master, user);
  }
  auto s = pool.Open(*replica, user);
  int64_t now = env->NowNanos() / 1'000'000'000;
  if (s.ok() && now - s->state.synced_at <= conf.max_replica_lag_seconds) return s;
  *note = s.ok() ? "replica lags (last synced " +
                       (s->state.synced_at ? std::to_string(now - s->state.synced_at) + " s ago"
                                           : std::string("never")) + ")"
                 : "replica unavailable: " + s.error().ToString();
  if (s.ok()) pool.Keep(std::move(*s));  // the replica may be current for the next user
  if (conf.on_replica_unavailable != "master" || !master) {
    return UnavailableError(*note + "; fallback to the master is not configured");
  }
  return pool.Open(*master, user);
}

UserOutcome SnapshotOne(Env* env, const SnapshotConfig& conf, SessionPool& pool,
                        const std::string& user, const std::string& from) {
  UserOutcome out{user, "", "", Status::Ok(), {}};
  auto session = ChooseSlot(env, conf, pool, user, from, &out.note);
  if (!session.ok()) {
    out.status = session.error();
    return out;
  }
  out.source = session->slot->Label();
  auto stats = SnapshotUserWithState(env, *session->t, user, session->state, out.source,
                                     PathsFor(conf.archive_dir, user), conf.writer);
  if (stats.ok()) {
    out.stats = *stats;
    pool.Keep(std::move(*session));
  } else {
    out.status = stats.error();
    session->t->Close();  // replies may still be in flight: the stream is not reused
  }
  return out;
}

// Users queued per drive unit; a worker takes a batch from a drive that has fewer than `cap`
// workers on it.
class DriveQueues {
 public:
  DriveQueues(const SnapshotConfig& conf, const std::vector<std::string>& users,
              const std::string& from, int workers) {
    for (size_t i = 0; i < users.size(); ++i) queues_[DriveOf(conf, users[i], from)].push_back(i);
    cap_ = std::max<size_t>(1, workers / std::max<size_t>(1, queues_.size()));
  }
  // Next batch (indices into users) and its drive; empty when all work is taken.
  std::pair<std::vector<size_t>, std::string> Take(size_t batch) {
    std::unique_lock g(mu_);
    while (true) {
      bool pending = false;
      for (auto& [drive, q] : queues_) {
        if (q.empty()) continue;
        pending = true;
        if (active_[drive] >= cap_) continue;
        size_t n = std::min(batch, q.size());
        std::vector<size_t> out(q.begin(), q.begin() + n);
        q.erase(q.begin(), q.begin() + n);
        ++active_[drive];
        return {out, drive};
      }
      if (!pending) return {};
      cv_.wait(g);
    }
  }
  void Done(const std::string& drive) {
    std::lock_guard g(mu_);
    --active_[drive];
    cv_.notify_all();
  }

 private:
  static std::string DriveOf(const SnapshotConfig& conf, const std::string& user,
                             const std::string& from) {
    const StoreSlots* store = conf.StoreOf(user);
    if (!store) return "";
    const Slot* s = store->Find(from.empty() ? conf.default_from : from);
    if (!s) s = &store->slots.front();
    return s->drive;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<size_t>> queues_;
  std::map<std::string, size_t> active_;
  size_t cap_ = 1;
};

// The records of the folder the slot serves now (cyrus.index only: what a client sees).
Result<std::vector<cyrus::IndexRecord>> ServedRecords(protocol::Transport& t,
                                                      const std::string& key) {
  RETURN_IF_ERROR(t.Send(protocol::kFolderFetch, protocol::EncodeString(key)));
  std::vector<cyrus::IndexRecord> records;
  while (true) {
    ASSIGN_OR_RETURN(protocol::Frame f, t.Receive());
    if (f.type == protocol::kAbsent || f.type == protocol::kOk) return records;
    if (f.type == protocol::kError) return protocol::StatusFromError(f.payload);
    ASSIGN_OR_RETURN(auto info, protocol::DecodeStateFile(f.payload));
    ASSIGN_OR_RETURN(std::string bytes, protocol::ReceiveBodyToString(t, uint64_t{4} << 30));
    if (info.name != "cyrus.index") continue;
    ASSIGN_OR_RETURN(auto idx, cyrus::ParseIndex(bytes, key + "/cyrus.index"));
    for (auto& r : idx.records) {
      if (r.HasFile()) records.push_back(std::move(r));
    }
  }
}

}  // namespace

Result<std::vector<std::string>> VerifyAgainstSlot(Env* env, const SnapshotConfig& conf,
                                                   const std::string& user,
                                                   const std::string& from) {
  std::string note;
  SessionPool pool([&conf](const Slot& slot) { return ConnectRead(conf, slot); });
  ASSIGN_OR_RETURN(Session s, ChooseSlot(env, conf, pool, user, from, &note));
  auto paths = PathsFor(conf.archive_dir, user);
  ASSIGN_OR_RETURN(auto idx, OpenIndexForArchive(env, paths.archive, paths.index));
  std::vector<std::string> problems;
  for (const auto& fs : s.state.folders) {
    ASSIGN_OR_RETURN(auto link, idx->Latest(LinkName(fs.intname)));
    if (!link || link->link_target != fs.folder_key) {
      problems.push_back("folder " + fs.intname + " is not in the archive under its uniqueid");
    }
    ASSIGN_OR_RETURN(auto records, ServedRecords(*s.t, fs.folder_key));
    ASSIGN_OR_RETURN(GuidMap map, LoadGuidMap(env, *idx, paths.archive, fs.folder_key));
    for (const auto& r : records) {
      ASSIGN_OR_RETURN(auto body, ArchivedBody(*idx, r, map, 0));
      if (!body) {
        problems.push_back("message uid " + std::to_string(r.uid) + " (" +
                           (HasGuid(r) ? r.GuidHex() : std::string("no GUID")) + ") of " +
                           fs.intname + " is not archived");
      }
    }
  }
  // The user's own files (seen, subscriptions, quota root, sieve): some version of each is in the
  // archive. Not compared by content: the slot's copy may have changed since the last run.
  for (const auto& uf : s.state.user_files) {
    ASSIGN_OR_RETURN(auto latest, idx->Latest(uf.name));
    if (!latest) problems.push_back(uf.name + " is not archived");
  }
  s.t->Close();
  return problems;
}

std::vector<UserOutcome> SnapshotUsers(Env* env, const SnapshotConfig& conf,
                                       const std::vector<std::string>& users,
                                       const std::string& from, spdlog::logger& log) {
  std::vector<UserOutcome> outcomes(users.size());
  int workers = conf.workers > 0 ? conf.workers
                                 : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  DriveQueues queues(conf, users, from, workers);
  auto work = [&] {
    SessionPool pool([&conf](const Slot& slot) { return ConnectRead(conf, slot); });
    while (true) {
      auto [batch, drive] = queues.Take(static_cast<size_t>(std::max(1, conf.batch)));
      if (batch.empty()) return;
      for (size_t i : batch) {
        outcomes[i] = SnapshotOne(env, conf, pool, users[i], from);
        const auto& o = outcomes[i];
        log.info("snapshot user={} source=\"{}\" fallback=\"{}\" status={} run={} unchanged={} "
                 "folders={} fetched={} messages={} bytes={}",
                 o.user, o.source, o.note, o.status.ok() ? "ok" : o.status.ToString(),
                 o.stats.run_id, o.stats.unchanged, o.stats.folders, o.stats.folders_fetched,
                 o.stats.messages_added, o.stats.bytes_added);
        if (o.stats.messages_without_guid > 0) {
          log.info("snapshot user={} messages_without_guid={} hint=\"archived by the SHA-1 of "
                   "their body, unchecked; reconstruct -G on the master gives them GUIDs\"",
                   o.user, o.stats.messages_without_guid);
        }
      }
      queues.Done(drive);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < std::min<int>(workers, static_cast<int>(users.size())); ++i) {
    threads.emplace_back(work);
  }
  for (auto& t : threads) t.join();
  return outcomes;
}

Result<LiveRestoreResult> RestoreIntoSlot(Env* env, const SnapshotConfig& conf,
                                          const std::string& user, const std::string& role,
                                          const LiveRestoreRequest& req) {
  const StoreSlots* store = conf.StoreOf(user);
  if (!store) return InvalidArgumentError("no store configured for user " + user);
  const Slot* slot = store->Find(role);
  if (!slot) return InvalidArgumentError("no " + role + " slot for user " + user);
  ASSIGN_OR_RETURN(auto ch, protocol::Connect(slot->host, slot->port, conf.tls,
                                              std::chrono::seconds(30)));
  protocol::ChannelTransport t(std::move(ch));
  return RestoreIntoLiveServer(env, t, req);
}

}  // namespace cyrsync::snapshot
