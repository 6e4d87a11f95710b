#include "syncer/syncer.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_set>

#include "common/parallel.h"
#include "cyrus/mboxlist.h"
#include "syncer/folder_sync.h"
#include "syncer/guard.h"
#include "syncer/server_files.h"
#include "syncer/spool.h"
#include "syncer/walk.h"

namespace cyrsync::syncer {
namespace {

using Mailbox = const cyrus::MailboxEntry*;

// Folders are described (their paths computed) by the worker that handles them: at 10k folders
// a Folder per mailbox held for the whole pass is tens of megabytes.
struct Work {
  Mailbox folder;        // nullptr for a check batch
  bool check_only;       // unchanged folder, --full: compare listings only
  bool full;             // replica compares against a readdir instead of its installed index
  // --full: unchanged folders checked in one FOLDER_CHECK round trip; those the replica reports
  // incomplete get a check-only exchange each.
  std::vector<Mailbox> batch;
};

constexpr size_t kCheckBatch = 128;

struct Plan {
  std::vector<Mailbox> folders;  // the selected folders this pass looks at
  std::vector<Work> work;
  std::vector<std::string> to_delete;
  GuardInput guard;
};

bool Selected(const Options& o, const std::string& owner, const std::string& intname) {
  if (o.all) return true;
  for (const auto& u : o.users) {
    if (owner == u) return true;
  }
  for (const auto& m : o.mailboxes) {
    if (intname == m) return true;
  }
  return false;
}

Result<ReplicaView> FetchManifest(protocol::Transport& t) {
  RETURN_IF_ERROR(t.Send(protocol::kGetManifest, protocol::EncodeString("")));
  ReplicaView view;
  while (true) {
    ASSIGN_OR_RETURN(protocol::Frame f, t.Receive());
    if (f.type == protocol::kManifestEnd) return view;
    if (f.type == protocol::kError) return protocol::StatusFromError(f.payload);
    if (f.type != protocol::kManifestChunk) return CorruptionError("unexpected manifest frame");
    RETURN_IF_ERROR(protocol::VisitManifestChunk(
        f.payload, [&view](const protocol::ManifestEntryView& e) { view.Add(e); }));
  }
}

}  // namespace

Result<std::string> Handshake(protocol::Transport& t) {
  RETURN_IF_ERROR(t.Send(protocol::kHello, protocol::Encode(protocol::Hello{})));
  ASSIGN_OR_RETURN(protocol::Frame f, protocol::ReceiveExpect(t, protocol::kHelloOk));
  ASSIGN_OR_RETURN(auto ok, protocol::DecodeHelloOk(f.payload));
  return ok.instance_id;
}

Syncer::Syncer(Env* env, const cyrus::ImapdConf& conf, Options opts, Connector connect,
               std::shared_ptr<spdlog::logger> log)
    : env_(env), conf_(conf), opts_(std::move(opts)), connect_(std::move(connect)),
      log_(std::move(log)), mailboxes_(opts_.racy_window_ns) {}

namespace {

// A selected folder as the syncer saw it while the replica was still sending its manifest.
struct Scanned {
  const cyrus::MailboxEntry* mb = nullptr;  // nullptr: not selected
  std::string key, owner;
  SourceStats st;
};

// The selected folders with their keys, owners and the paths of the files the change check
// stats (not statted yet).
std::vector<Scanned> SelectSource(const cyrus::ImapdConf& conf, const Options& opts,
                                  const std::vector<cyrus::MailboxEntry>& mailboxes) {
  std::vector<const cyrus::MailboxEntry*> real;
  for (const auto& mb : mailboxes) {
    if (mb.IsReal()) real.push_back(&mb);
  }
  // Filled in place and compacted in place: a second vector for the selected ones would hold
  // another 3 MB at 10k folders while both exist.
  std::vector<Scanned> out(real.size());
  ParallelFor(real.size(), opts.stat_threads, [&](size_t i) {
    // Only what the change check needs: a full DescribeFolder per folder (a copy of the
    // mailbox entry and seven paths) was a tenth of an unchanged pass.
    const cyrus::MailboxEntry& mb = *real[i];
    std::string owner = mb.Owner();
    if (!Selected(opts, owner, mb.intname)) return;
    out[i] = Scanned{&mb, cyrus::FolderKey(mb), std::move(owner), {}};
    out[i].st.index_path = ToWire(cyrus::MetaPath(conf, mb, cyrus::MetaFile::kIndex));
    out[i].st.header_path = ToWire(cyrus::MetaPath(conf, mb, cyrus::MetaFile::kHeader));
  });
  std::erase_if(out, [](const Scanned& s) { return s.mb == nullptr; });
  return out;
}

// The stats run on opts.stat_threads threads: warm they are cheap either way, cold each one may
// wait for an inode read, and several in flight let the disk serve them together.
void StatSource(Env* env, const cyrus::ImapdConf& conf, const Options& opts,
                std::vector<Scanned>& scanned) {
  std::vector<SourceStats*> stats(scanned.size());
  for (size_t i = 0; i < scanned.size(); ++i) stats[i] = &scanned[i].st;
  StatFolders(env, conf, stats, opts.stat_threads);
}

// The users whose server-wide files (seen, subscriptions, sieve...) this pass covers: the
// owners of the selected folders and the users named with -u.
std::set<std::string> PassUsers(const Options& opts, const std::vector<Scanned>& scanned) {
  std::set<std::string> users(opts.users.begin(), opts.users.end());
  const std::string* last = nullptr;  // a user's folders come one after another
  for (const auto& s : scanned) {
    if (s.owner.empty() || (last != nullptr && *last == s.owner)) continue;
    users.insert(s.owner);
    last = &s.owner;
  }
  return users;
}

// Keeps the folders this pass works on, or all of them in a --full pass (which also looks for
// unlisted directories).
Plan MakePlan(Env* env, const cyrus::ImapdConf& conf, const Options& opts,
              const std::vector<Scanned>& scanned, const ReplicaView& view) {
  Plan plan;
  std::unordered_set<std::string_view> keys;  // views of scanned's keys
  keys.reserve(scanned.size());
  std::vector<std::pair<bool, bool>> kinds;  // per kept folder: check_only, full
  for (const auto& s : scanned) {
    keys.insert(s.key);
    ++plan.guard.source_folders;
    auto expunge = [&] { return DescribeFolder(conf, *s.mb).expunge; };
    switch (CompareFolder(env, conf, s.st, expunge, view)) {
      case FolderState::kChanged: kinds.emplace_back(false, opts.full); break;
      case FolderState::kUnchanged:
        if (!opts.full) continue;
        kinds.emplace_back(true, true);
        break;
      case FolderState::kMissingOnSource:
        ++plan.guard.source_missing;
        if (!opts.full) continue;
        kinds.emplace_back(true, false);  // kept for the unlisted-directory report only
        break;
    }
    plan.folders.push_back(s.mb);
  }
  Work checks{nullptr, true, true, {}};
  for (size_t i = 0; i < plan.folders.size(); ++i) {
    auto [check_only, full] = kinds[i];
    if (check_only && !full) continue;
    if (!check_only) {
      plan.work.push_back({plan.folders[i], false, full, {}});
      continue;
    }
    checks.batch.push_back(plan.folders[i]);
    if (checks.batch.size() == kCheckBatch) plan.work.push_back(std::exchange(checks, {nullptr, true, true, {}}));
  }
  if (!checks.batch.empty()) plan.work.push_back(std::move(checks));
  // Deletions only within a scope the pass covers completely: every folder (-A) or every folder
  // of the named users (-u). A -m pass names single folders and deletes nothing.
  std::set<std::string> whole_users(opts.users.begin(), opts.users.end());
  for (const auto& [key, owner] : view.folder_owner()) {
    bool in_scope = opts.all || (!owner.empty() && whole_users.count(owner));
    if (!in_scope || keys.count(key)) continue;
    plan.to_delete.push_back(key);
  }
  std::sort(plan.to_delete.begin(), plan.to_delete.end());  // a stable order for the log
  plan.guard.replica_folders = view.folder_owner().size();
  plan.guard.deletions = plan.to_delete.size();
  return plan;
}

struct Totals {
  std::mutex mu;
  PassStats* stats;
  void Add(const FolderResult& r, bool check_only) {
    std::lock_guard g(mu);
    (check_only ? stats->folders_checked : stats->folders_changed)++;
    stats->messages_sent += r.messages_sent;
    stats->messages_vanished += r.messages_vanished;
    stats->bytes_sent += r.bytes_sent;
    stats->folders_unsettled += r.unsettled;
  }
  void Fail(size_t n = 1) {
    std::lock_guard g(mu);
    stats->folders_failed += n;
  }
};

// Asks the replica what became of the installs this connection queued (each folder was
// answered OK as soon as its install was queued). Returns the number that failed.
Result<size_t> Flush(protocol::Transport& t, const FolderContext& ctx) {
  RETURN_IF_ERROR(t.Send(protocol::kFolderFlush, ""));
  ASSIGN_OR_RETURN(protocol::Frame f, protocol::ReceiveExpect(t, protocol::kFolderFlushResult));
  ASSIGN_OR_RETURN(auto res, protocol::DecodeFolderFlushResult(f.payload));
  for (const auto& failed : res.failed) {
    ctx.log->error("folder install failed on the replica mailbox=\"{}\" error=\"{}\"",
                   failed.intname, failed.error);
  }
  return res.failed.size();
}

// Ends a worker's connection: the `queued` folders it installed are confirmed by FOLDER_FLUSH
// (those that failed, or all of them when the flush fails, count as failed).
void ConfirmAndClose(protocol::Transport& t, const FolderContext& ctx, Totals& totals,
                     size_t queued) {
  auto failed = Flush(t, ctx);
  if (failed.ok()) {
    totals.Fail(*failed);
  } else if (queued > 0) {
    ctx.log->error("folder installs unconfirmed: the flush failed folders={} error=\"{}\"", queued,
                   failed.status().ToString());
    totals.Fail(queued);
  }
  t.Close();
}

// One FOLDER_CHECK round trip for the batch, then a check-only exchange for each folder the
// replica reports incomplete. *done counts the folders finished before an error.
Status CheckBatch(protocol::Transport& t, const FolderContext& ctx,
                  const std::vector<Mailbox>& batch, Totals& totals, size_t* done) {
  protocol::FolderCheck req;
  for (Mailbox mb : batch) {
    Folder f = DescribeFolder(*ctx.conf, *mb);
    req.folders.push_back({f.key, ToWire(f.data_dir), ToWire(f.archive_dir)});
  }
  RETURN_IF_ERROR(t.Send(protocol::kFolderCheck, protocol::Encode(req)));
  ASSIGN_OR_RETURN(protocol::Frame f, protocol::ReceiveExpect(t, protocol::kFolderCheckResult));
  ASSIGN_OR_RETURN(auto res, protocol::DecodeFolderCheckResult(f.payload));
  std::set<std::string> flagged(res.needs_exchange.begin(), res.needs_exchange.end());
  for (size_t i = 0; i < batch.size(); ++i) {
    FolderResult r;
    if (flagged.count(req.folders[i].folder_key)) {
      ctx.log->info("folder incomplete on the replica, repairing mailbox={}", batch[i]->intname);
      ASSIGN_OR_RETURN(r, SyncFolder(t, ctx, DescribeFolder(*ctx.conf, *batch[i]), true, true));
    }
    totals.Add(r, true);
    ++*done;
  }
  return Status::Ok();
}

// One worker: its own connection; after any failure the stream state is unknown, so the worker
// reconnects before its next folder. The folders it sent are confirmed by one FOLDER_FLUSH per
// connection, at its end.
void WorkerLoop(const std::vector<Work>& work, std::atomic<size_t>& next, const Connector& connect,
                const FolderContext& ctx, Totals& totals) {
  std::unique_ptr<protocol::Transport> t;
  size_t queued = 0;  // folders installed through t, not yet confirmed
  auto unconfirmed = [&] {
    if (queued == 0) return;
    ctx.log->error("folder installs unconfirmed: the connection failed folders={}", queued);
    totals.Fail(std::exchange(queued, 0));
  };
  for (size_t i = next++; i < work.size(); i = next++) {
    const Work& w = work[i];
    const std::string what = w.folder ? w.folder->intname
                                      : "check of " + std::to_string(w.batch.size()) + " folders";
    if (!t) {
      auto c = connect();
      if (c.ok() && Handshake(**c).ok()) t = std::move(*c);
    }
    size_t done = 0;
    Status st = UnavailableError("replica unreachable");
    if (t && w.folder) {
      auto r = SyncFolder(*t, ctx, DescribeFolder(*ctx.conf, *w.folder), w.full, w.check_only);
      if (r.ok()) totals.Add(*r, w.check_only);
      st = r.status();
      done = r.ok();
      queued += done && !w.check_only;
    } else if (t) {
      st = CheckBatch(*t, ctx, w.batch, totals, &done);
    }
    if (st.ok()) continue;
    totals.Fail((w.folder ? 1 : w.batch.size()) - done);
    ctx.log->error("folder sync failed mailbox=\"{}\" error=\"{}\"", what, st.ToString());
    unconfirmed();
    if (t) t->Close();
    t.reset();
  }
  if (t) ConfirmAndClose(*t, ctx, totals, queued);
}

void RunWorkers(const std::vector<Work>& work, int n, const Connector& connect,
                const FolderContext& ctx, PassStats& stats) {
  Totals totals{{}, &stats};
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  n = std::max(1, std::min<int>(n, static_cast<int>(work.size())));
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&] { WorkerLoop(work, next, connect, ctx, totals); });
  }
  for (auto& th : threads) th.join();
}

}  // namespace

Result<PassStats> Syncer::RunPass() {
  PassStats stats;
  const uint64_t t0 = env_->NowNanos();
  auto phase = [&](const char* what) {
    log_->debug("pass phase={} ms={:.2f}", what, (env_->NowNanos() - t0) / 1e6);
  };
  RETURN_IF_ERROR(CheckSourceRoots(env_, conf_, opts_));
  ASSIGN_OR_RETURN(auto primary, connect_());
  ASSIGN_OR_RETURN(stats.replica_instance, Handshake(*primary));
  phase("connected");
  // The replica checks and sends its manifest while this side reads mailboxes.db and stats the
  // folders: the two halves of an unchanged pass overlap.
  auto manifest = std::async(std::launch::async, [&] { return FetchManifest(*primary); });
  // --full -A also walks this side for directories mailboxes.db does not list. The walk needs
  // nothing from the pass, so it starts now: with a cold cache its directory reads overlap the
  // stats below and no longer compete with the replica's listings during the folder checks.
  std::future<WalkStats> walked;
  if (opts_.full && opts_.all) {
    walked = std::async(std::launch::async, [&] { return WalkSpool(env_, conf_); });
  }
  auto mailboxes = mailboxes_.Get(env_, conf_);
  phase("mailboxes");
  FolderContext ctx{env_, &conf_, cyrus::SpoolOwner(env_, conf_), opts_.racy_window_ns, log_.get(),
                    nullptr};
  std::vector<Scanned> scanned;
  std::set<std::string> users;
  // The server-wide files are listed (statted) while the folders are.
  std::future<std::vector<ServerFile>> files;
  if (mailboxes.ok()) {
    scanned = SelectSource(conf_, opts_, **mailboxes);
    users = PassUsers(opts_, scanned);
    files = std::async(std::launch::async, [&] {
      return ListServerFiles(ctx, **mailboxes, users, opts_.all, opts_.stat_threads);
    });
    StatSource(env_, conf_, opts_, scanned);
  }
  phase("scanned");
  Result<ReplicaView> fetched = manifest.get();
  phase("manifest");
  RETURN_IF_ERROR(mailboxes.status());
  ASSIGN_OR_RETURN(ReplicaView view, std::move(fetched));
  ctx.view = &view;
  Plan plan = MakePlan(env_, conf_, opts_, scanned, view);
  RETURN_IF_ERROR(CheckGuard(plan.guard, opts_));
  stats.folders = plan.guard.source_folders;
  stats.folders_missing = plan.guard.source_missing;

  if (!plan.work.empty()) {
    // The first connection sat idle while the workers copied (a long seed outlasts the
    // daemon's idle timeout): the rest of the pass uses a fresh one.
    primary->Close();
    RunWorkers(plan.work, opts_.workers, connect_, ctx, stats);
    ASSIGN_OR_RETURN(primary, connect_());
    ASSIGN_OR_RETURN(std::string again, Handshake(*primary));
    if (again != stats.replica_instance) {
      return AbortedError("the replica changed identity during the pass (" +
                          stats.replica_instance + " -> " + again + "); run the pass again");
    }
  }

  // Listed before the folders were copied: a file that changed since is copied next pass.
  ASSIGN_OR_RETURN(auto sf, SyncServerFiles(*primary, ctx, files.get(), view, users, opts_.all));
  phase("server_files");
  stats.server_files_copied = sf.copied;
  stats.server_files_removed = sf.removed;
  for (const auto& key : plan.to_delete) {
    RETURN_IF_ERROR(primary->Send(protocol::kFolderDelete,
                                  protocol::Encode(protocol::FolderDelete{key, false})));
    RETURN_IF_ERROR(protocol::ExpectOk(*primary));
    ++stats.folders_deleted;
  }
  if (stats.folders_failed == 0) {
    // Lets a snapshot host tell how current the replica is for each user.
    protocol::PassDone done{opts_.all ? std::vector<std::string>{} : std::vector<std::string>(
                                                                        users.begin(), users.end()),
                            env_->NowNanos() / 1'000'000'000};
    RETURN_IF_ERROR(primary->Send(protocol::kPassDone, protocol::Encode(done)));
    RETURN_IF_ERROR(protocol::ExpectOk(*primary));
  }
  phase("pass_done");
  if (walked.valid()) {
    stats.folders_unlisted = ReportUnlistedFolders(conf_, walked.get(), plan.folders, *log_);
  }
  primary->Close();
  return stats;
}

}  // namespace cyrsync::syncer
