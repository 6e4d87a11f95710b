#include "cli/snapshot_commands.h"

#include <pwd.h>

#include <ctime>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "snapshot/config.h"
#include "snapshot/restore.h"
#include "snapshot/runner.h"

namespace cyrsync::cli {
namespace {

Result<snapshot::SnapshotConfig> LoadConfig(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(Env::Default(), path));
  auto c = snapshot::ParseSnapshotConfig(text);
  if (!c.ok()) return c.error().WithContext(path);
  return c;
}

std::vector<std::string> Users(const SnapshotArgs& a, const snapshot::SnapshotConfig& c) {
  if (!a.all) return a.users;
  std::vector<std::string> out;
  for (const auto& [u, store] : c.users) out.push_back(u);
  return out;
}

int Fail(spdlog::logger& log, const std::string& what, const Status& st) {
  log.error("{} error=\"{}\"", what, st.ToString());
  return 1;
}

}  // namespace

int RunSnapshot(const SnapshotArgs& a) {
  auto log = MakeLogger("snapshot");
  auto conf = LoadConfig(a.config);
  if (!conf.ok()) return Fail(*log, "cannot read the snapshot configuration", conf.error());
  if (auto st = MakeDirs(Env::Default(), conf->archive_dir, 0700); !st.ok()) {
    return Fail(*log, "cannot create the archive directory", st);
  }
  auto outcomes = snapshot::SnapshotUsers(Env::Default(), *conf, Users(a, *conf), a.from, *log);
  int failed = 0;
  for (const auto& o : outcomes) failed += !o.status.ok();
  log->info("snapshot done users={} failed={}", outcomes.size(), failed);
  return failed == 0 ? 0 : 2;
}

int RunRestore(const SnapshotArgs& a) {
  auto log = MakeLogger("snapshot");
  auto conf = LoadConfig(a.config);
  if (!conf.ok()) return Fail(*log, "cannot read the snapshot configuration", conf.error());
  if (a.users.size() != 1) return Fail(*log, "restore", InvalidArgumentError("give one -u USER"));
  snapshot::RestoreRequest req;
  req.paths = snapshot::PathsFor(conf->archive_dir, a.users[0]);
  req.folder = a.folder;
  req.uid = a.uid;
  req.as_of = a.run;
  req.out_dir = a.to;
  if (!a.owner.empty()) {
    struct passwd* pw = getpwnam(a.owner.c_str());
    if (!pw) return Fail(*log, "restore", NotFoundError("no such user: " + a.owner));
    req.owner = {true, pw->pw_uid, pw->pw_gid};
  }
  auto r = snapshot::RestoreToDirectory(Env::Default(), req);
  if (!r.ok()) return Fail(*log, "restore failed", r.error());
  log->info("restore done user={} folders={} messages={} bytes={} missing={} to={}", a.users[0],
            r->folders, r->messages, r->bytes, r->missing, a.to);
  return r->missing == 0 ? 0 : 2;
}

int RunVerify(const SnapshotArgs& a) {
  auto log = MakeLogger("snapshot");
  auto conf = LoadConfig(a.config);
  if (!conf.ok()) return Fail(*log, "cannot read the snapshot configuration", conf.error());
  nlohmann::json report = nlohmann::json::array();
  int bad = 0;
  for (const auto& user : Users(a, *conf)) {
    auto paths = snapshot::PathsFor(conf->archive_dir, user);
    nlohmann::json r = {{"user", user}};
    auto idx = snapshot::IndexDb::Open(paths.index);
    auto v = idx.ok() ? snapshot::Verify(Env::Default(), paths.archive, idx->get())
                      : Result<snapshot::VerifyReport>(idx.error());
    if (!v.ok()) {
      r["ok"] = false;
      r["problems"] = {v.error().ToString()};
    } else {
      r["ok"] = v->ok();
      r["members"] = v->members;
      r["entries"] = v->entries;
      r["problems"] = v->problems;
    }
    bad += !r["ok"].get<bool>();
    report.push_back(r);
    if (!a.json) {
      log->info("verify user={} ok={} problems={}", user, r["ok"].get<bool>(), r["problems"].dump());
    }
  }
  if (a.json) std::cout << report.dump(1) << "\n";
  return bad == 0 ? 0 : 1;
}

int RunCompact(const SnapshotArgs& a) {
  auto log = MakeLogger("snapshot");
  auto conf = LoadConfig(a.config);
  if (!conf.ok()) return Fail(*log, "cannot read the snapshot configuration", conf.error());
  int failed = 0;
  for (const auto& user : Users(a, *conf)) {
    auto paths = snapshot::PathsFor(conf->archive_dir, user);
    snapshot::CompactPolicy p;
    p.now = static_cast<int64_t>(std::time(nullptr));
    p.retention_seconds = conf->retention_seconds;
    p.force = a.force;
    auto r = snapshot::Compact(Env::Default(), paths.archive, paths.index, p);
    if (!r.ok()) {
      ++failed;
      log->error("compact failed user={} error=\"{}\"", user, r.error().ToString());
      continue;
    }
    log->info("compact user={} compacted={} live_share={:.3f} threshold={:.3f} before={} after={}",
              user, r->compacted, r->live_share, r->threshold, r->bytes_before, r->bytes_after);
  }
  return failed == 0 ? 0 : 1;
}

int RunReindex(const SnapshotArgs& a) {
  auto log = MakeLogger("snapshot");
  auto conf = LoadConfig(a.config);
  if (!conf.ok()) return Fail(*log, "cannot read the snapshot configuration", conf.error());
  int failed = 0;
  for (const auto& user : Users(a, *conf)) {
    auto paths = snapshot::PathsFor(conf->archive_dir, user);
    Status st = snapshot::Reindex(Env::Default(), paths.archive, paths.index);
    if (!st.ok()) ++failed;
    log->info("reindex user={} status={}", user, st.ok() ? "ok" : st.ToString());
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace cyrsync::cli
