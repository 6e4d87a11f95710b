// cyrsync: one binary, four jobs. Parses the command line once and hands a plain struct to the
// subcommand (cli/commands.cc).
#include <malloc.h>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/snapshot_commands.h"
#include "common/log.h"

namespace {

void AddTls(CLI::App* app, cyrsync::protocol::TlsFiles* tls) {
  app->add_option("--ca", tls->ca_file, "CA certificate (PEM)")->required();
  app->add_option("--cert", tls->cert_file, "this side's certificate (PEM)")->required();
  app->add_option("--key", tls->key_file, "this side's private key (PEM)")->required();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cyrsync::cli;
  // The stat and reader threads allocate a little each; glibc's default of 8 arenas per core
  // keeps what each one freed, which at 10k folders was a tenth of the peak RSS.
  mallopt(M_ARENA_MAX, 2);
  CLI::App app{"cyrsync: hot-spare replication of Cyrus IMAP spools"};
  app.require_subcommand(1);
  std::string level = "info";
  app.add_option("--log-level", level, "trace|debug|info|warn|error");

  SyncArgs sync;
  auto* s = app.add_subcommand("sync", "push this server's spool to a replica daemon");
  s->add_option("-C", sync.imapd_conf, "imapd.conf of the source Cyrus")->required();
  s->add_option("--replica", sync.replica, "replica daemon HOST:PORT")->required();
  AddTls(s, &sync.tls);
  bool all_flag = false;
  auto* all = s->add_flag("-A,--all", all_flag, "all users (default)");
  auto* users = s->add_option("-u,--user", sync.opts.users, "only these users");
  auto* boxes = s->add_option("-m,--mailbox", sync.opts.mailboxes, "only these internal names");
  all->excludes(users)->excludes(boxes);
  s->add_flag("--full", sync.opts.full, "also compare directory listings and repair");
  s->add_option("--every", sync.every_seconds, "repeat every SECONDS");
  s->add_option("--workers", sync.opts.workers, "parallel connections");
  s->add_option("--stat-threads", sync.opts.stat_threads, "threads that stat cyrus.* files")
      ->check(CLI::Range(1, 256));
  s->add_flag("--force", sync.opts.force, "override the disk-loss guard");
  s->add_option("--max-delete-share", sync.opts.max_delete_share, "guard threshold (0-1)");

  ServeArgs serve;
  auto* v = app.add_subcommand("serve", "run the replica daemon");
  v->add_option("-C", serve.imapd_conf, "imapd.conf of the replica's (stopped) Cyrus")->required();
  v->add_option("--listen", serve.listen, "HOST:PORT (port 0: any)")->required();
  AddTls(v, &serve.tls);
  v->add_option("--state-dir", serve.state_dir, "manifest and journals (default <conf>/cyrsync)");
  v->add_option("--cyrus-user", serve.cyrus_user, "owner of written files");
  v->add_option("--cyrus-pidfile", serve.cyrus_pidfile, "refuse writes while this Cyrus runs");
  v->add_option("--stat-threads", serve.stat_threads, "threads that check the manifest")
      ->check(CLI::Range(1, 256));
  v->add_flag("--no-watch", serve.no_watch,
              "stat every installed file at every check instead of watching with inotify "
              "(a spool another host can write, e.g. over NFS)");
  v->add_flag("--read-only", serve.read_only, "serve snapshot reads only (beside a live Cyrus)");
  v->add_flag("--allow-restore", serve.allow_restore,
              "accept restores of archived folders into new folders (Cyrus may run)");
  v->add_option("--cyrus-bin", serve.cyrus_bin, "Cyrus tools for --allow-restore")
      ->capture_default_str();

  ServeArgs recover;
  auto* r = app.add_subcommand("recover", "finish interrupted installs (run before starting Cyrus)");
  r->add_option("-C", recover.imapd_conf, "imapd.conf of the replica")->required();
  r->add_option("--state-dir", recover.state_dir, "as for serve");
  recover.recover_only = true;

  CaArgs ca;
  auto* c = app.add_subcommand("ca", "private CA for mutual TLS");
  c->require_subcommand(1);
  auto* ci = c->add_subcommand("init", "create DIR/ca.crt and DIR/ca.key");
  ci->add_option("dir", ca.dir)->required();
  auto* cs = c->add_subcommand("issue", "issue DIR/NAME.crt and DIR/NAME.key");
  cs->add_option("dir", ca.dir)->required();
  cs->add_option("name", ca.name)->required();
  cs->add_option("--host", ca.hosts, "DNS names or IPs for the certificate");

  SnapshotArgs snap;
  auto add_users = [&](CLI::App* cmd) {
    cmd->add_option("-c,--config", snap.config, "snapshot host configuration (JSON)")->required();
    cmd->add_option("-u,--user", snap.users, "users");
    cmd->add_flag("-A,--all", snap.all, "every user of the configuration");
  };
  auto* sn = app.add_subcommand("snapshot", "append a run to users' archives");
  add_users(sn);
  sn->add_option("--from", snap.from, "master|replica (default: the configuration's)");
  auto* rs = app.add_subcommand("restore", "restore to a directory, into a stopped Cyrus, or into a running one");
  add_users(rs);
  rs->add_option("--folder", snap.folder, "internal folder name, e.g. user.alice.Sent");
  rs->add_option("--uid", snap.uid, "one message of --folder");
  rs->add_option("--run", snap.run, "as of this run (default: latest)");
  auto* to = rs->add_option("--to", snap.to, "output directory");
  rs->add_option("--owner", snap.owner, "owner of restored files (e.g. cyrus)");
  auto* spool = rs->add_flag("--into-spool", snap.into_spool, "into a stopped Cyrus (with -C)");
  spool->needs(rs->add_option("-C", snap.imapd_conf, "imapd.conf of the target Cyrus"))
      ->excludes(to);
  rs->add_flag("--overwrite", snap.overwrite, "--into-spool: replace existing files/entries");
  rs->add_flag("--no-undump", snap.no_undump, "--into-spool: print the ctl_mboxlist command");
  rs->add_option("--mailboxes-json", snap.mailboxes_json, "--into-spool: ctl_mboxlist -u input");
  rs->add_option("--cyrus-bin", snap.cyrus_bin, "--into-spool: Cyrus tools directory");
  auto* slot = rs->add_option("--into-slot", snap.into_slot,
                              "master|replica: into that slot's running Cyrus, as new folders")
                   ->check(CLI::IsMember({"master", "replica"}))
                   ->excludes(to)
                   ->excludes(spool);
  slot->needs(rs->add_option("--as", snap.as_name,
                             "--into-slot: new folder name (whole user: the new parent)"));
  auto* vf = app.add_subcommand("verify", "check archives and their indexes");
  add_users(vf);
  vf->add_flag("--json", snap.json, "machine-readable report");
  vf->add_flag("--against-slot", snap.against_slot, "also check the slot's data is archived");
  vf->add_option("--from", snap.from, "slot for --against-slot");
  auto* cp = app.add_subcommand("compact", "rewrite archives keeping live records");
  add_users(cp);
  cp->add_flag("--force", snap.force, "compact even above the threshold");
  auto* ri = app.add_subcommand("reindex", "rebuild indexes from the archives alone");
  add_users(ri);

  CLI11_PARSE(app, argc, argv);
  cyrsync::SetLogLevel(level);
  sync.opts.all = sync.opts.users.empty() && sync.opts.mailboxes.empty();
  if (s->parsed()) return RunSync(sync);
  if (v->parsed()) return RunServe(serve);
  if (r->parsed()) return RunServe(recover);
  if (ci->parsed()) return RunCaInit(ca);
  if (sn->parsed()) return RunSnapshot(snap);
  if (rs->parsed()) return RunRestore(snap);
  if (vf->parsed()) return RunVerify(snap);
  if (cp->parsed()) return RunCompact(snap);
  if (ri->parsed()) return RunReindex(snap);
  return RunCaIssue(ca);
}
