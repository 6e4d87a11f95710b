#include "cli/snapshot_commands.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "cyrus/folder.h"
#include "cyrus/tools.h"
#include "snapshot/config.h"
#include "snapshot/restore.h"
#include "snapshot/restore_spool.h"
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

Result<Owner> OwnerByName(const std::string& name) {
  struct passwd* pw = getpwnam(name.c_str());
  if (!pw) return NotFoundError("no such user: " + name);
  return Owner{true, pw->pw_uid, pw->pw_gid};
}

// A path as a shell word, for the commands printed to the operator.
std::string ShellWord(const std::string& s) {
  if (s.find_first_of(" \t\n'\"\\$`;&|<>()*?[]#~!{}") == std::string::npos) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The user's INBOX as reconstruct names it in the admin namespace of the target.
std::string InboxForTools(const cyrus::ImapdConf& conf, const std::string& user) {
  size_t at = user.rfind('@');
  std::string local = user.substr(0, at);
  std::string domain = at == std::string::npos ? "" : user.substr(at);
  return std::string("user") + (conf.unixhierarchysep ? '/' : '.') + local + domain;
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
  if (a.into_spool) return RunRestoreIntoSpool(a);
  if (!a.into_slot.empty()) return RunRestoreIntoSlot(a);
  auto log = MakeLogger("snapshot");
  auto conf = LoadConfig(a.config);
  if (!conf.ok()) return Fail(*log, "cannot read the snapshot configuration", conf.error());
  if (a.users.size() != 1) return Fail(*log, "restore", InvalidArgumentError("give one -u USER"));
  if (a.to.empty()) {
    return Fail(*log, "restore", InvalidArgumentError("give --to DIR or --into-spool -C CONF"));
  }
  snapshot::RestoreRequest req;
  req.paths = snapshot::PathsFor(conf->archive_dir, a.users[0]);
  req.folder = a.folder;
  req.uid = a.uid;
  req.as_of = a.run;
  req.out_dir = a.to;
  if (!a.owner.empty()) {
    auto owner = OwnerByName(a.owner);
    if (!owner.ok()) return Fail(*log, "restore", owner.error());
    req.owner = *owner;
  }
  auto r = snapshot::RestoreToDirectory(Env::Default(), req);
  if (!r.ok()) return Fail(*log, "restore failed", r.error());
  log->info("restore done user={} folders={} messages={} bytes={} missing={} to={}", a.users[0],
            r->folders, r->messages, r->bytes, r->missing, a.to);
  return r->missing == 0 ? 0 : 2;
}

int RunRestoreIntoSlot(const SnapshotArgs& a) {
  auto log = MakeLogger("snapshot");
  auto conf = LoadConfig(a.config);
  if (!conf.ok()) return Fail(*log, "cannot read the snapshot configuration", conf.error());
  if (a.users.size() != 1) return Fail(*log, "restore", InvalidArgumentError("give one -u USER"));
  snapshot::LiveRestoreRequest req;
  req.from.paths = snapshot::PathsFor(conf->archive_dir, a.users[0]);
  req.from.folder = a.folder;
  req.from.uid = a.uid;
  req.from.as_of = a.run;
  req.target = a.as_name;
  auto r = snapshot::RestoreIntoSlot(Env::Default(), *conf, a.users[0], a.into_slot, req);
  if (!r.ok()) return Fail(*log, "restore into " + a.into_slot + " failed", r.error());
  for (const auto& [name, id] : r->created) {
    log->info("folder created mailbox={} uniqueid={}", name, id);
  }
  log->info("restore done user={} slot={} folders={} messages={} bytes={} missing={}", a.users[0],
            a.into_slot, r->stats.folders, r->stats.messages, r->stats.bytes, r->stats.missing);
  return r->stats.missing == 0 ? 0 : 2;
}

int RunRestoreIntoSpool(const SnapshotArgs& a) {
  auto log = MakeLogger("snapshot");
  Env* env = Env::Default();
  auto conf = LoadConfig(a.config);
  if (!conf.ok()) return Fail(*log, "cannot read the snapshot configuration", conf.error());
  if (a.users.size() != 1) return Fail(*log, "restore", InvalidArgumentError("give one -u USER"));
  const std::string& user = a.users[0];
  auto target = cyrus::LoadImapdConf(env, a.imapd_conf);
  if (!target.ok()) return Fail(*log, "cannot read the target imapd.conf", target.error());
  snapshot::SpoolRestoreRequest req;
  req.paths = snapshot::PathsFor(conf->archive_dir, user);
  req.folder = a.folder;
  req.uid = a.uid;
  req.as_of = a.run;
  req.overwrite = a.overwrite;
  req.owner = cyrus::SpoolOwner(env, *target);
  if (!a.owner.empty()) {
    auto owner = OwnerByName(a.owner);
    if (!owner.ok()) return Fail(*log, "restore", owner.error());
    req.owner = *owner;
  }
  std::string json;
  auto r = snapshot::RestoreIntoSpool(env, req, *target, &json);
  if (!r.ok()) return Fail(*log, "restore into spool failed", r.error());
  std::string json_path = a.mailboxes_json;
  if (json_path.empty()) {
    json_path = JoinPath(target->configdirectory, "cyrsync-restore-" + user + ".json");
  }
  if (auto st = AtomicWriteFile(env, json_path, json, {.mode = 0600, .owner = req.owner});
      !st.ok()) {
    return Fail(*log, "cannot write the mailboxes JSON", st);
  }
  log->info("restore into spool done user={} folders={} messages={} bytes={} missing={} json={}",
            user, r->folders, r->messages, r->bytes, r->missing, json_path);
  if (r->quota_not_restored) {
    log->warn("the archived quota root was not restored: it needs quota_db: quotalegacy on the "
              "target (here {}) and the user's INBOX in the restore; set the quota again, then "
              "run quota -f user={}",
              target->quota_db, user);
  }
  const std::string exe = JoinPath(a.cyrus_bin, "ctl_mboxlist");
  const std::string reconstruct = JoinPath(a.cyrus_bin, "reconstruct") + " -C " +
                                  ShellWord(a.imapd_conf) + " -r " +
                                  ShellWord(InboxForTools(*target, user));
  if (a.no_undump) {
    std::cout << exe << " -C " << ShellWord(a.imapd_conf) << " -u < " << ShellWord(json_path)
              << "\n";
    std::cout << reconstruct << "\n";
    return r->missing == 0 ? 0 : 2;
  }
  Status st = cyrus::UndumpMailboxes(env, *target, {a.cyrus_bin, a.imapd_conf}, json_path, json);
  if (!st.ok()) return Fail(*log, "registering the restored folders failed", st);
  log->info("folders registered in mailboxes.db; before starting Cyrus run: {}", reconstruct);
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
    if (a.against_slot) {
      auto slot = snapshot::VerifyAgainstSlot(Env::Default(), *conf, user, a.from);
      std::vector<std::string> extra =
          slot.ok() ? *slot : std::vector<std::string>{slot.error().ToString()};
      r["slot_problems"] = extra;
      if (!extra.empty()) r["ok"] = false;
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
