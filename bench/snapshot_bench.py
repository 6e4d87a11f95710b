#!/usr/bin/env python3
"""cyrsync snapshot benchmark: first snapshot vs `tar czf`, unchanged snapshot vs a stat walk,
restore of one message vs `tar xzf ARCHIVE files/<sha1>`, all on one generated user.

What it does (details and how to read the output: bench/README.md, "Snapshot benchmark"):
  1. builds a private Cyrus 3.6.1 with ONE user holding --messages N in --folders F (scaled by
     --scale; default 1,000,000 in 1,000): folders are created over IMAP, a seed of real messages
     is delivered over LMTP to a separate seed user, Cyrus is stopped and the bulk is generated
     as files with sync_bench.py's generator (message files, cyrus.cache, cyrus.index v17 with
     GUID = SHA-1 of the file and all CRCs); a sample is validated with `reconstruct -n -G`;
  2. starts `cyrsync serve --read-only` on that tree (Cyrus stays stopped) and measures, cold
     (`sync; echo 3 > /proc/sys/vm/drop_caches`) and warm:
     (1) the user's first snapshot (into an empty archive dir) vs `tar czf` (gzip -6) of the
         user's folder directories: MB/s of message data, CPU seconds, MB/s per core;
     (2) a snapshot of the unchanged user vs a stat walk of the same directories (a C program
         compiled at run time: readdir + lstat of every entry);
     (3) restoring one message (`cyrsync restore --folder F --uid N --to DIR`) from the archive
         of the first snapshot: min/median/max wall over random messages, and the time inside
         the process (LD_PRELOAD constructor -> destructor), vs
         `tar xzf ARCHIVE files/<sha1>` of the same message;
  3. prints the tables and the ratios; --json writes everything.

Python 3 standard library only. Needs root, Debian's cyrus-imapd, GNU tar, gzip, cc.
"""

import argparse
import contextlib
import grp
import hashlib
import json
import multiprocessing
import os
import pwd
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import cyruslab as cl  # noqa: E402
import cyrsync_lab as lab  # noqa: E402
import sync_bench as sb  # noqa: E402  (spool generator: read_templates, gen_folder, make_message)

USER = "snapuser"
SEED_USER = "snapseed"
TARGETS = {
    "first_vs_tar": 3.0,          # first snapshot >= 3x tar czf's MB/s
    "mb_per_core": 100.0,         # aim: >= 100 MB/s of message data per CPU core (zlib level 1)
    "restore_ms": 50.0,           # one message < 50 ms
}

STATWALK_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
/* stat walk: readdir + fstatat(AT_SYMLINK_NOFOLLOW) (= lstat) of EVERY entry, recursing into
   directories; the top directories themselves are lstat()ed too. Directories come from
   argv, or one per line from the file after -f. */
static long long files, dirs, other, bytes, errs;
static void walk(int dfd) {
  DIR *d = fdopendir(dfd);
  if (!d) { close(dfd); errs++; return; }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    struct stat st;
    if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) != 0) { errs++; continue; }
    if (S_ISDIR(st.st_mode)) {
      int fd = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) { dirs++; walk(fd); } else errs++;
    } else if (S_ISREG(st.st_mode)) {
      files++; bytes += st.st_size;
    } else {
      other++;
    }
  }
  closedir(d);
}
static void top(const char *p) {
  struct stat st;
  if (lstat(p, &st) != 0) { perror(p); errs++; return; }
  int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) { perror(p); errs++; return; }
  dirs++;
  walk(fd);
}
int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "-f") == 0) {
    FILE *f = fopen(argv[2], "r");
    if (!f) { perror(argv[2]); return 1; }
    char line[8192];
    while (fgets(line, sizeof line, f)) {
      size_t l = strlen(line);
      while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
      if (l) top(line);
    }
    fclose(f);
  } else {
    for (int i = 1; i < argc; i++) top(argv[i]);
  }
  printf("files=%lld dirs=%lld other=%lld bytes=%lld errors=%lld\n", files, dirs, other, bytes,
         errs);
  return errs ? 1 : 0;
}
"""

TIMER_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
/* LD_PRELOAD for `cyrsync restore` only: CLOCK_MONOTONIC at this library's constructor (after
   the dynamic loader mapped and relocated everything, before the program's own constructors and
   main) and at its destructor (after main returned and the program's static destructors ran),
   written to $CSB_TIMER_OUT. Python's time.monotonic() is the same clock. */
static struct timespec t0;
__attribute__((constructor)) static void csb_start(void) { clock_gettime(CLOCK_MONOTONIC, &t0); }
__attribute__((destructor)) static void csb_stop(void) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const char *p = getenv("CSB_TIMER_OUT");
  if (!p) return;
  char buf[128];
  int n = snprintf(buf, sizeof buf, "%lld.%09ld %lld.%09ld\n", (long long)t0.tv_sec, t0.tv_nsec,
                   (long long)t1.tv_sec, t1.tv_nsec);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) { if (write(fd, buf, (size_t)n) < 0) {} close(fd); }
}
"""

log = sb.log


def fmt_s(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def ms(v):
    return "-" if v is None else f"{v * 1000:.1f}"


def parse_snapshot_line(out):
    m = None
    for m in re.finditer(r"snapshot user=(\S+) (.*)", out):
        pass
    if not m:
        return {}
    st = {"user": m.group(1)}
    for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', m.group(2)):
        v = v.strip('"')
        try:
            st[k] = int(v)
        except ValueError:
            st[k] = v
    return st


def proc_cpu(pid):
    """utime+stime seconds of a process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def prepare_cache(cache):
    """cold: sync + drop the page cache, dentries and inodes; warm: sync only."""
    if cache == "cold":
        sb.drop_caches()
    else:
        os.sync()


def run_timed(cmd, watch_pid=None, timeout=7200, env=None):
    """Runs cmd under /usr/bin/time. Returns wall, rc, output, CPU s of cmd and its waited-for
    children (tar: + gzip), max RSS, CPU s of watch_pid (the daemon) during the run, and the
    machine's busy CPU s."""
    waited, busy_before = sb.wait_quiet()
    fd, tpath = tempfile.mkstemp(prefix="csnap-time")
    os.close(fd)
    out_f = tempfile.TemporaryFile()
    c0 = sb.cpu_snapshot()
    d0 = proc_cpu(watch_pid) if watch_pid else None
    t0 = time.monotonic()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tpath] + list(cmd),
                         stdout=out_f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env)
    sb.wait_exact(p, timeout)
    wall = time.monotonic() - t0
    d1 = proc_cpu(watch_pid) if watch_pid else None
    c1 = sb.cpu_snapshot()
    out_f.seek(0)
    out = out_f.read().decode(errors="replace")
    out_f.close()
    cpu = maxrss = None
    try:
        with open(tpath) as f:
            last = f.read().strip().splitlines()[-1].split()
        cpu, maxrss = float(last[1]) + float(last[2]), int(last[3])
    except (OSError, ValueError, IndexError):
        pass
    os.unlink(tpath)
    res = {"wall": wall, "rc": p.returncode, "out": out, "cpu": cpu, "maxrss_kb": maxrss,
           "machine_busy": c1[0] - c0[0], "iowait": c1[1] - c0[1],
           "busy_cores_before": busy_before, "quiet_wait_s": waited}
    if d0 is not None and d1 is not None:
        res["serve_cpu"] = d1 - d0
    return res


class SnapBench:
    def __init__(self, a):
        self.a = a
        self.work = os.path.abspath(a.workdir)
        self.tools = os.path.join(self.work, "tools")
        self.cy = cl.CyrusInstance(os.path.join(self.work, "cy"), "snapbench")
        self.daemon = None
        self.results = {"params": {}, "spool": {}, "first": [], "incremental": [],
                        "restore": [], "tar_extract": [], "baseline": {}, "ratios": [],
                        "serve_vmhwm_kb": None, "notes": []}
        self.folders = []   # dicts: name, path, rel, count, bytes

    # ---- setup ------------------------------------------------------------------------------
    def build_tools(self):
        os.makedirs(self.tools, exist_ok=True)
        self.statwalk = sb.compile_c(STATWALK_C, os.path.join(self.tools, "statwalk"))
        self.nofsync = sb.compile_c(sb.NOFSYNC_C, os.path.join(self.tools, "nofsync.so"),
                                    shared=True)
        self.timer = sb.compile_c(TIMER_C, os.path.join(self.tools, "timer.so"), shared=True)
        self.bin = os.path.join(self.tools, "cyrsync")
        shutil.copy2(self.a.binary, self.bin)
        lab.BIN = self.bin

    def check_space(self):
        n = self.a.n_messages
        st = os.statvfs(self.work)
        free, ifree = st.f_bavail * st.f_frsize, st.f_favail
        # spool: 4 KiB block per message + index/cache; per archive/tar.gz ~1.4 KB per message
        # (two tar.gz and two archives at most at a time); restore outputs are tiny
        need = int(n * (4096 + 300) + len(self.a.caches) * 2 * n * 1500 + 2e9)
        need_i = int(n * 1.02 + 1e5)
        self.results["spool"]["free_bytes_before"] = free
        log(f"free space {free / 1e9:.1f} GB (need about {need / 1e9:.1f} GB), free inodes "
            f"{ifree} (need about {need_i})")
        if free < need or ifree < need_i:
            sys.exit(f"not enough free space or inodes in {self.work}")

    @contextlib.contextmanager
    def fast_cyrus(self):
        """Cyrus with fsync disabled, only while the spool is being built."""
        with sb.env_var("LD_PRELOAD", self.nofsync):
            self.cy.start()
        try:
            yield
        finally:
            self.cy.stop()

    def folder_names(self):
        """INBOX + G top folders + children spread over them: n_folders in all."""
        n = self.a.n_folders
        names = [f"user.{USER}"]
        groups = min(10, n - 1)
        for g in range(groups):
            names.append(f"user.{USER}.Group{g:02d}")
        for i in range(n - 1 - groups):
            names.append(f"user.{USER}.Group{i % groups:02d}.F{i:05d}")
        return names

    def create_folders(self, names):
        errors = []

        def work(chunk):
            try:
                c = self.cy.imap(cl.ADMIN)
                try:
                    for name in chunk:
                        cl._check(c.create(cl.q(name)), "CREATE " + name)
                finally:
                    c.logout()
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        # INBOX first, then the groups (parents before children), then the rest in 4 threads
        groups = [n for n in names if n.count(".") <= 2]
        work(groups)
        rest = [n for n in names if n.count(".") > 2]
        ths = [threading.Thread(target=work, args=(rest[i::4],)) for i in range(4)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        c = self.cy.imap(cl.ADMIN)
        try:
            cl._check(c.create(cl.q(f"user.{SEED_USER}")), "CREATE seed")
        finally:
            c.logout()
        if errors:
            raise RuntimeError("CREATE failed: " + "; ".join(errors[:3]))

    def deliver_templates(self, rng):
        lm = self.cy.lmtp()
        try:
            for i in range(self.a.templates):
                size = rng.randrange(1024, 4096) - 330   # lmtpd adds ~330 bytes of headers
                msg = sb.make_message(rng, "BNCH%012d" % (999999000000 + i), size,
                                      f"{SEED_USER}@cyruslab")
                code, text = lm.deliver("sender@example.org", [SEED_USER], msg)[SEED_USER]
                if not 200 <= code < 300:
                    raise RuntimeError(f"LMTP: {code} {text}")
        finally:
            lm.close()

    def mailbox_paths(self):
        data = json.loads(self.cy.tool("ctl_mboxlist", "-d", check=True).stdout)
        out = {}
        for name, v in data.items():
            uid = v.get("uniqueid")
            if not uid or "d" in str(v.get("mbtype", "")):
                continue
            out[name] = os.path.join(self.cy.spool, "uuid", uid[0], uid[1], uid)
        return out

    def build_spool(self):
        a = self.a
        self.cy.setup()
        rng = random.Random(a.seed)
        names = self.folder_names()
        t0 = time.monotonic()
        with self.fast_cyrus():
            self.create_folders(names)
            t_create = time.monotonic() - t0
            log(f"created {len(names)} folders of user {USER} over IMAP in {t_create:.1f}s")
            t1 = time.monotonic()
            self.deliver_templates(rng)
            t_deliver = time.monotonic() - t1
        paths = self.mailbox_paths()
        r = self.cy.tool("mbpath", f"user.{USER}")
        if r.stdout.strip() != paths[f"user.{USER}"]:
            raise RuntimeError(f"path mismatch: mbpath {r.stdout.strip()!r}")
        templates = sb.read_templates(paths[f"user.{SEED_USER}"])
        weights = [rng.lognormvariate(0, 1.0) for _ in names]
        total_w = sum(weights)
        counts = [int(a.n_messages * w / total_w) for w in weights]
        for i in rng.sample(range(len(names)), a.n_messages - sum(counts)):
            counts[i] += 1
        now = int(time.time())
        tasks = [(paths[name], i, counts[i], rng.randrange(2 ** 32), now - 5 * 365 * 86400,
                  now - 3600) for i, name in enumerate(names)]
        owner = (pwd.getpwnam(cl.CYRUS_USER).pw_uid, grp.getgrnam(cl.CYRUS_GROUP).gr_gid)
        t2 = time.monotonic()
        done = used = 0
        per_folder = {}
        # forkserver: a child forked from this process after its IMAP threads ran could
        # inherit a lock one of them held and hang (seen once); forkserver children start clean
        ctx = multiprocessing.get_context("forkserver")
        # gen_folder returns (n, bytes); map() keeps the order so bytes can be attributed
        with ctx.Pool(os.cpu_count(), initializer=sb._gen_init,
                      initargs=(templates, owner)) as pool:
            for i, (n, u) in enumerate(pool.imap(sb.gen_folder, tasks, chunksize=4)):
                per_folder[i] = (n, u)
                done += n
                used += u
        t_gen = time.monotonic() - t2
        log(f"generated {done} messages ({used / 1e6:.0f} MB) in {t_gen:.1f}s "
            f"({done / max(t_gen, 1e-9):.0f} msg/s)")
        for i, name in enumerate(names):
            p = paths[name]
            self.folders.append({"name": name, "path": p, "rel": os.path.relpath(p, self.cy.spool),
                                 "count": per_folder[i][0], "bytes": per_folder[i][1]})
        self.results["spool"].update({
            "method": "one user's folders created over IMAP on a private Cyrus 3.6.1, "
                      f"{a.templates} seed messages delivered over LMTP to user.{SEED_USER}, bulk "
                      "generated as files with bench/sync_bench.py's gen_folder (message files, "
                      "cyrus.cache entries cloned from the seed with a same-length unique token, "
                      "cyrus.index v17 with GUID = SHA-1 of the file, record/header CRC32, sync "
                      "CRCs), sample validated with reconstruct -n -G",
            "user": USER, "folders": len(names), "messages": done, "message_bytes": used,
            "max_folder_messages": max(counts), "empty_folders": counts.count(0),
            "t_create_imap": t_create, "t_deliver_seed": t_deliver, "t_generate": t_gen})
        self.validate(rng)

    def validate(self, rng):
        names = [f["name"] for f in self.folders]
        sample = set(rng.sample(names, min(self.a.validate_sample, len(names))))
        biggest = max(self.folders, key=lambda f: f["count"])["name"]
        sample.update({biggest, f"user.{USER}", f"user.{SEED_USER}"})
        sample = sorted(sample)
        t = time.monotonic()
        findings = []
        for i in range(0, len(sample), 50):
            chunk = sample[i:i + 50]
            r = self.cy.tool("reconstruct", "-n", "-G", *chunk)
            for line in (r.stdout + r.stderr).splitlines():
                if line.strip() and line.strip() not in chunk:
                    findings.append(line.strip())
        dt = time.monotonic() - t
        self.results["spool"]["validation"] = {
            "folders_checked": len(sample), "includes_biggest": biggest,
            "n_findings": len(findings), "findings": findings[:50], "seconds": dt}
        log(f"reconstruct -n -G on {len(sample)} folders (incl. the biggest, {biggest}): "
            f"{len(findings)} findings in {dt:.1f}s")
        for line in findings[:10]:
            log("   " + line)
        if findings and not self.a.ignore_validation:
            raise RuntimeError("generated spool failed validation (see findings above)")

    def count_tree(self):
        self.dirlist = os.path.join(self.work, "user-dirs.txt")
        with open(self.dirlist, "w") as f:
            for fo in self.folders:
                f.write(fo["path"] + "\n")
        self.rellist = os.path.join(self.work, "user-dirs-rel.txt")
        with open(self.rellist, "w") as f:
            for fo in self.folders:
                f.write(fo["rel"] + "\n")
        r = subprocess.run([self.statwalk, "-f", self.dirlist], capture_output=True, text=True,
                           check=True)
        c = dict(kv.split("=") for kv in r.stdout.split())
        sp = self.results["spool"]
        sp["tree_files"] = int(c["files"])
        sp["tree_dirs"] = int(c["dirs"])
        sp["tree_bytes"] = int(c["bytes"])
        du = subprocess.run(["du", "-sk", "--files0-from=-"],
                            input="\0".join(fo["path"] for fo in self.folders),
                            capture_output=True, text=True)
        sp["tree_du_bytes"] = sum(int(l.split()[0]) for l in du.stdout.splitlines() if l) * 1024
        log(f"user tree: {c['files']} files in {c['dirs']} folder dirs, {int(c['bytes']) / 1e6:.0f} "
            f"MB in files ({sp['message_bytes'] / 1e6:.0f} MB message data), "
            f"{sp['tree_du_bytes'] / 1e6:.0f} MB on disk")

    # ---- daemon and configuration -----------------------------------------------------------
    def start_daemon(self):
        self.pki = lab.Pki(self.work)
        self.daemon = lab.Daemon(self.cy, self.pki, state_dir=os.path.join(self.work, "state"))
        self.daemon.extra = ["--read-only"]
        self.daemon.start()

    def stop_daemon(self):
        if self.daemon and self.daemon.proc:
            self.results["serve_vmhwm_kb"] = sb.vm_hwm_kb(self.daemon.proc.pid)
            self.daemon.stop()
        self.daemon = None

    def config(self, tag):
        d = os.path.join(self.work, f"arch-{tag}")
        conf = {
            "archive_dir": d,
            "tls": {"ca": os.path.join(self.pki.dir, "ca.crt"),
                    "cert": os.path.join(self.pki.dir, "syncer.crt"),
                    "key": os.path.join(self.pki.dir, "syncer.key")},
            "default_from": "master", "on_replica_unavailable": "fail",
            "stores": {"s1": {"slots": [{"role": "master", "host": "127.0.0.1",
                                         "port": self.daemon.port, "drive": "d1"}]}},
            "users": {USER: "s1"}, "workers": 1, "compression_level": self.a.level,
            "retention_days": 30,
        }
        path = os.path.join(self.work, f"snapshot-{tag}.json")
        with open(path, "w") as f:
            json.dump(conf, f, indent=1)
        return path, d

    # ---- (1) first snapshot vs tar czf ------------------------------------------------------
    def run_tar_create(self, cache):
        out = os.path.join(self.work, f"tar-{cache}.tar.gz")
        prepare_cache(cache)
        res = run_timed(["tar", "czf", out, "-C", self.cy.spool, "-T", self.rellist],
                        timeout=self.a.timeout)
        res["sync_after"] = timed_sync()
        res["out_bytes"] = os.path.getsize(out) if os.path.exists(out) else None
        row = self.first_row("tar czf (gzip -6)", cache, res)
        os.unlink(out)           # one big file: cheap to delete, and saves disk
        return row

    def run_first_snapshot(self, cache, rep=1):
        conf, adir = self.config(f"first-{cache}" + (f"-{rep}" if rep > 1 else ""))
        prepare_cache(cache)
        res = run_timed([self.bin, "snapshot", "-c", conf, "-u", USER],
                        watch_pid=self.daemon.proc.pid, timeout=self.a.timeout)
        res["sync_after"] = timed_sync()
        st = parse_snapshot_line(res["out"])
        res["stats"] = st
        arch = os.path.join(adir, f"{USER}.tar.gz")
        res["out_bytes"] = os.path.getsize(arch) if os.path.exists(arch) else None
        idx = os.path.join(adir, f"{USER}.index.sqlite")
        res["index_bytes"] = os.path.getsize(idx) if os.path.exists(idx) else None
        if res["rc"] != 0 or st.get("status") != "ok" or st.get("unchanged") != "false":
            res["error"] = res["out"][-2000:]
        row = self.first_row("cyrsync snapshot", cache, res)
        row["conf"], row["archive_dir"] = conf, adir
        return row

    def first_row(self, tool, cache, res):
        mb = self.results["spool"]["message_bytes"] / 1e6
        cpu = (res.get("cpu") or 0) + (res.get("serve_cpu") or 0)
        row = {"tool": tool, "cache": cache, "wall": res["wall"], "rc": res["rc"],
               "cpu_tool": res.get("cpu"), "cpu_serve": res.get("serve_cpu"), "cpu_total": cpu,
               "maxrss_kb": res.get("maxrss_kb"), "sync_after": res.get("sync_after"),
               "machine_busy": res["machine_busy"], "iowait": res["iowait"],
               "busy_cores_before": res["busy_cores_before"], "out_bytes": res.get("out_bytes"),
               "index_bytes": res.get("index_bytes"), "stats": res.get("stats"),
               "mb_s": mb / res["wall"] if res["wall"] > 0 else None,
               "mb_s_per_core": mb / cpu if cpu > 0 else None,
               "error": res.get("error") or (res["out"][-2000:] if res["rc"] != 0 else None)}
        self.results["first"].append(row)
        log(f"  first  {tool:20} {cache:4} wall={res['wall']:.2f}s "
            f"{row['mb_s'] or 0:.1f} MB/s cpu={res.get('cpu')}+{res.get('serve_cpu')} "
            f"per-core={row['mb_s_per_core'] or 0:.1f} MB/s out={(row['out_bytes'] or 0) / 1e6:.0f} MB "
            f"rc={res['rc']} +sync={res.get('sync_after', 0):.2f}s")
        if row["error"]:
            log("    ERROR: " + row["error"][-800:].replace("\n", "\n    "))
        return row

    # ---- (2) unchanged snapshot vs stat walk ------------------------------------------------
    def run_incremental(self, conf, cache, rep):
        prepare_cache(cache)
        res = run_timed([self.bin, "snapshot", "-c", conf, "-u", USER],
                        watch_pid=self.daemon.proc.pid, timeout=self.a.timeout)
        st = parse_snapshot_line(res["out"])
        ok = res["rc"] == 0 and st.get("status") == "ok" and st.get("unchanged") == "true"
        row = {"tool": "cyrsync snapshot (unchanged)", "cache": cache, "rep": rep,
               "wall": res["wall"], "rc": res["rc"], "cpu_tool": res.get("cpu"),
               "cpu_serve": res.get("serve_cpu"), "maxrss_kb": res.get("maxrss_kb"),
               "stats": st, "busy_cores_before": res["busy_cores_before"],
               "error": None if ok else res["out"][-2000:]}
        self.results["incremental"].append(row)
        log(f"  unchanged cyrsync  {cache:4} #{rep} wall={res['wall']:.3f}s "
            f"unchanged={st.get('unchanged')} rc={res['rc']}")
        if row["error"]:
            log("    ERROR: " + row["error"][-800:].replace("\n", "\n    "))
        return row

    def run_statwalk(self, cache, rep):
        prepare_cache(cache)
        res = run_timed([self.statwalk, "-f", self.dirlist], timeout=self.a.timeout)
        row = {"tool": "stat walk (readdir+lstat, C)", "cache": cache, "rep": rep,
               "wall": res["wall"], "rc": res["rc"], "cpu_tool": res.get("cpu"),
               "walk": res["out"].strip(), "busy_cores_before": res["busy_cores_before"],
               "error": res["out"][-500:] if res["rc"] != 0 else None}
        self.results["incremental"].append(row)
        log(f"  unchanged statwalk {cache:4} #{rep} wall={res['wall']:.3f}s {res['out'].strip()}")
        return row

    # ---- (3) restore one message ------------------------------------------------------------
    def pick_messages(self, n, rng):
        total = sum(f["count"] for f in self.folders)
        picks = []
        for _ in range(n):
            k = rng.randrange(total)
            for f in self.folders:
                if k < f["count"]:
                    picks.append((f, k + 1))      # generated uids are 1..count
                    break
                k -= f["count"]
        return picks

    def restore_one(self, conf, folder, uid, cache, i):
        out = os.path.join(self.work, "restore", f"{cache}-{i}")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        src = os.path.join(folder["path"], f"{uid}.")
        with open(src, "rb") as f:
            want = hashlib.sha1(f.read()).hexdigest()
        tfile = os.path.join(self.work, "restore", "timer.out")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tfile)
        env = dict(os.environ, LD_PRELOAD=self.timer, CSB_TIMER_OUT=tfile)
        cmd = [self.bin, "restore", "-c", conf, "-u", USER, "--folder", folder["name"],
               "--uid", str(uid), "--to", out]
        prepare_cache(cache)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryFile() as out_f:
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=out_f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
            sb.wait_exact(proc, 600)
            t1 = time.monotonic()
            out_f.seek(0)
            p = subprocess.CompletedProcess(cmd, proc.returncode,
                                            out_f.read().decode(errors="replace"), "")
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        inside = startup = None
        try:
            with open(tfile) as f:
                a, b = (float(x) for x in f.read().split())
            inside, startup = b - a, a - t0
        except (OSError, ValueError):
            pass
        got = None
        path = os.path.join(out, f"{uid}.")
        if os.path.exists(path):
            with open(path, "rb") as f:
                got = hashlib.sha1(f.read()).hexdigest()
        row = {"tool": "cyrsync restore --folder --uid", "cache": cache, "folder": folder["name"],
               "folder_messages": folder["count"], "uid": uid, "sha1": want,
               "wall": t1 - t0, "inside": inside, "startup": startup,
               "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
               "rc": p.returncode, "ok": p.returncode == 0 and got == want,
               "error": None if p.returncode == 0 and got == want else
               (p.stdout + p.stderr)[-1000:] + f" (sha1 {got} want {want})"}
        self.results["restore"].append(row)
        shutil.rmtree(out, ignore_errors=True)
        return row

    def tar_extract_one(self, archive, sha1, cache, i, occurrence=False):
        out = os.path.join(self.work, "restore", f"tar-{cache}-{i}")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        cmd = ["tar", "xzf", archive, "-C", out]
        if occurrence:
            cmd.append("--occurrence=1")
        cmd.append(f"files/{sha1}")
        prepare_cache(cache)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryFile() as out_f:
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=out_f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            sb.wait_exact(proc, 3600)
            wall = time.monotonic() - t0
            out_f.seek(0)
            p = subprocess.CompletedProcess(cmd, proc.returncode, "",
                                            out_f.read().decode(errors="replace"))
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        got = None
        path = os.path.join(out, "files", sha1)
        if os.path.exists(path):
            with open(path, "rb") as f:
                got = hashlib.sha1(f.read()).hexdigest()
        row = {"tool": "tar xzf --occurrence=1" if occurrence else "tar xzf", "cache": cache,
               "sha1": sha1, "wall": wall,
               "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
               "rc": p.returncode, "ok": p.returncode == 0 and got == sha1,
               "error": None if p.returncode == 0 and got == sha1 else p.stderr[-500:]}
        self.results["tar_extract"].append(row)
        shutil.rmtree(out, ignore_errors=True)
        return row

    def baseline_startup(self):
        """Wall of `cyrsync --help` (exec, dynamic loading, CLI parsing, exit), warm."""
        walls = []
        for _ in range(10):
            t0 = time.monotonic()
            sb.wait_exact(subprocess.Popen([self.bin, "--help"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL), 60)
            walls.append(time.monotonic() - t0)
        self.results["baseline"]["cyrsync_help_wall"] = {
            "min": min(walls), "median": statistics.median(walls), "max": max(walls)}
        log(f"  baseline `cyrsync --help` (warm): median {statistics.median(walls) * 1000:.1f} ms")

    def phase_restore(self, conf, adir):
        log("== (3) restore one message vs tar xzf ARCHIVE files/<sha1>")
        archive = os.path.join(adir, f"{USER}.tar.gz")
        rng = random.Random(self.a.seed * 7919)
        picks = self.pick_messages(self.a.restore_samples, rng)
        waited, busy = sb.wait_quiet()
        self.results["restore_busy_cores_before"] = busy
        log(f"  machine before the restores: {busy:.2f} cores busy (waited {waited:.0f}s)")
        self.baseline_startup()
        for cache in self.a.caches:
            if cache == "warm":
                # the archive and its index in the page cache (as right after a snapshot)
                for p in (archive, os.path.join(adir, f"{USER}.index.sqlite")):
                    with open(p, "rb") as f:
                        while f.read(1 << 22):
                            pass
            for i, (folder, uid) in enumerate(picks):
                r = self.restore_one(conf, folder, uid, cache, i)
                if not r["ok"]:
                    log(f"    ERROR restore {folder['name']} uid {uid}: {r['error']}")
            rows = [r for r in self.results["restore"] if r["cache"] == cache]
            w = [r["wall"] for r in rows]
            log(f"  restore {cache}: {len(rows)} messages, wall min/median/max "
                f"{min(w) * 1000:.1f}/{statistics.median(w) * 1000:.1f}/{max(w) * 1000:.1f} ms, "
                f"ok={sum(r['ok'] for r in rows)}")
        for cache in self.a.caches:
            for i, (folder, uid) in enumerate(picks[:self.a.tar_samples]):
                sha1 = next(r["sha1"] for r in self.results["restore"]
                            if r["folder"] == folder["name"] and r["uid"] == uid)
                r = self.tar_extract_one(archive, sha1, cache, i)
                log(f"  tar xzf {cache} #{i}: {r['wall']:.2f}s ok={r['ok']}")
                if self.a.tar_occurrence:
                    r = self.tar_extract_one(archive, sha1, cache, i, occurrence=True)
                    log(f"  tar xzf --occurrence=1 {cache} #{i}: {r['wall']:.2f}s ok={r['ok']}")

    # ---- optional CPU profile ----------------------------------------------------------------
    def profile_first(self, seconds):
        """An extra, unmeasured first snapshot into a scratch archive: `perf record` (DWARF call
        graphs) of the client and the daemon for `seconds`, after the first second. The top of
        the inclusive ("children") profile per process goes into the report."""
        if not shutil.which("perf"):
            self.results["notes"].append("--profile: perf not installed")
            return
        log(f"== profile: perf record of a first snapshot for {seconds}s (not measured)")
        conf, adir = self.config("profile")
        data = os.path.join(self.work, "perf.data")
        client = subprocess.Popen([self.bin, "snapshot", "-c", conf, "-u", USER],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        pids = {"client (cyrsync snapshot)": client.pid, "daemon (cyrsync serve)": self.daemon.proc.pid}
        subprocess.run(["perf", "record", "-F", "199", "--call-graph", "dwarf,8192", "-o", data,
                        "-p", ",".join(str(p) for p in pids.values()), "--", "sleep",
                        str(seconds)], capture_output=True)
        client.terminate()     # the scratch archive is deleted below; no need to finish the run
        client.wait()
        prof = {}
        keep = re.compile(r"cyrsync::|deflate|inflate|sqlite3_prepare|sqlite3_step|memset|memcpy|"
                          r"memmove|SHA1|sha1|EVP_|ssl3_write|SSL_write|SSL_read|__libc_send|"
                          r"__libc_recv|epoll_wait|pread|crc32|malloc")
        for what, pid in pids.items():
            rep = subprocess.run(["perf", "report", "-i", data, "--pid", str(pid), "--children",
                                  "--percentage", "relative", "--sort", "symbol", "-g", "none",
                                  "--percent-limit", "2", "--stdio"],
                                 capture_output=True, text=True).stdout
            lines, seen = [], set()
            for line in rep.splitlines():
                if not line.strip() or line.startswith("#") or "(inlined)" in line:
                    continue
                sym = line.split("] ", 1)[-1].strip()
                if not keep.search(sym) or sym.startswith(("boost::", "std::")) or sym in seen:
                    continue
                seen.add(sym)     # the same symbol can come once per thread/mapping: keep the max
                parts = line.split()
                lines.append(f"{parts[0]:>8} {parts[1]:>8}  {sym[:110]}")
            prof[what] = lines[:28]
        self.results["profile"] = {"seconds": seconds, "frequency": 199, "top_children": prof}
        shutil.rmtree(adir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(data)

    # ---- report -----------------------------------------------------------------------------
    def agg(self, rows, key="wall"):
        v = [r[key] for r in rows if r.get(key) is not None]
        if not v:
            return None
        return {"n": len(v), "min": min(v), "median": statistics.median(v), "max": max(v)}

    def ratios(self):
        out = []
        R = self.results

        def add(what, value, text, target=None, ok=None):
            out.append({"what": what, "value": value, "text": text, "target": target, "ok": ok})

        for cache in self.a.caches:
            cs = [r for r in R["first"] if r["tool"] == "cyrsync snapshot" and r["cache"] == cache]
            ts = [r for r in R["first"] if r["tool"].startswith("tar") and r["cache"] == cache]
            # runs of the same rep form a pair; the median pair ratio is the result
            pairs = [(c, t) for c, t in zip(cs, ts) if not c["error"] and not t["error"]]
            c = t = None
            if pairs:
                pairs.sort(key=lambda p: p[0]["mb_s"] / p[1]["mb_s"])
                c, t = pairs[(len(pairs) - 1) // 2]  # the lower median
            if c and t:
                ratio = c["mb_s"] / t["mb_s"]
                each = ""
                if len(pairs) > 1:
                    each = (f" (lower median of {len(pairs)} interleaved pairs: " +
                            ", ".join(f"{p[0]['mb_s'] / p[1]['mb_s']:.2f}x" for p in pairs) + ")")
                add(f"first snapshot vs tar czf ({cache})", ratio,
                    f"first snapshot ({cache}): cyrsync {c['mb_s']:.1f} MB/s ({fmt_s(c['wall'])} s), "
                    f"tar czf {t['mb_s']:.1f} MB/s ({fmt_s(t['wall'])} s) -> {ratio:.2f}x" + each,
                    f">= {TARGETS['first_vs_tar']:g}x", ratio >= TARGETS["first_vs_tar"])
            else:
                add(f"first snapshot vs tar czf ({cache})", None,
                    f"first snapshot ({cache}): not measured (a run failed)")
            if c:
                add(f"MB/s per core ({cache})", c["mb_s_per_core"],
                    f"cyrsync MB/s per core ({cache}, level {self.a.level}): "
                    f"{c['mb_s_per_core']:.1f} (CPU {c['cpu_tool']:.1f} s client + "
                    f"{c['cpu_serve'] or 0:.1f} s serve)" +
                    (f"; tar+gzip {t['mb_s_per_core']:.1f}" if t and t["mb_s_per_core"] else ""),
                    f">= {TARGETS['mb_per_core']:g}", c["mb_s_per_core"] >= TARGETS["mb_per_core"])
        for cache in self.a.caches:
            c = self.agg([r for r in R["incremental"] if r["cache"] == cache and
                          r["tool"].startswith("cyrsync") and not r["error"]])
            w = self.agg([r for r in R["incremental"] if r["cache"] == cache and
                          r["tool"].startswith("stat walk") and not r["error"]])
            if c and w:
                ratio = w["median"] / c["median"]
                add(f"unchanged snapshot vs stat walk ({cache})", ratio,
                    f"unchanged snapshot ({cache}, median of {c['n']}/{w['n']}): cyrsync "
                    f"{fmt_s(c['median'])} s, stat walk {fmt_s(w['median'])} s -> {ratio:.1f}x "
                    "faster")
            else:
                add(f"unchanged snapshot vs stat walk ({cache})", None,
                    f"unchanged snapshot ({cache}): not measured (a run failed)")
        for cache in self.a.caches:
            c = self.agg([r for r in R["restore"] if r["cache"] == cache and r["ok"]])
            t = self.agg([r for r in R["tar_extract"] if r["cache"] == cache and r["ok"] and
                          r["tool"] == "tar xzf"])
            nbad = len([r for r in R["restore"] if r["cache"] == cache and not r["ok"]])
            if c:
                add(f"restore one message ({cache})", c["median"],
                    f"restore one message ({cache}, {c['n']} msgs{', %d FAILED' % nbad if nbad else ''}):"
                    f" min/median/max {ms(c['min'])}/{ms(c['median'])}/{ms(c['max'])} ms",
                    f"< {TARGETS['restore_ms']:g} ms",
                    c["max"] * 1000 < TARGETS["restore_ms"] and nbad == 0)
            if c and t:
                ratio = t["median"] / c["median"]
                add(f"restore vs tar xzf ({cache})", ratio,
                    f"restore vs tar xzf ({cache}): cyrsync {ms(c['median'])} ms, tar xzf "
                    f"{fmt_s(t['median'])} s (median of {t['n']}) -> {ratio:.0f}x faster")
        R["ratios"] = out
        return out

    def print_report(self):
        R = self.results
        sp, p = R["spool"], R["params"]
        W = 110
        print()
        print("=" * W)
        print(f"cyrsync {p.get('git_head')} (binary sha256 {str(p.get('binary_sha256'))[:12]}, "
              f"uncommitted: {len(p.get('git_dirty_files') or [])} files); {p.get('cpus')} CPUs; "
              f"scale {p.get('scale')}; zlib level {p.get('level')}")
        print(f"snapshot benchmark: user {sp.get('user')}: {sp.get('messages')} messages "
              f"({sp.get('message_bytes', 0) / 1e6:.0f} MB message data) in {sp.get('folders')} "
              f"folders (largest {sp.get('max_folder_messages')}); tree {sp.get('tree_files')} files, "
              f"{sp.get('tree_du_bytes', 0) / 1e6:.0f} MB on disk")
        print(f"spool method: {sp.get('method')}")
        v = sp.get("validation") or {}
        print(f"validation: reconstruct -n -G on {v.get('folders_checked')} folders: "
              f"{v.get('n_findings')} findings")
        print("MB/s = message data (sum of the <uid>. files) / wall; cpu s = CPU of the process "
              "and its waited-for children (tar: + gzip) + cyrsync serve (its /proc delta)")
        print("-" * W)
        print("(1) first snapshot of the user")
        print(f"{'tool':22} {'cache':5} {'wall s':>8} {'MB/s':>7} {'cpu s':>13} {'MB/s/core':>9} "
              f"{'out MB':>7} {'+sync s':>7} {'maxRSS MB':>9} {'rc':>3} {'busy':>5}  notes")
        for r in R["first"]:
            cpu = f"{r['cpu_tool'] or 0:.1f}" + (f"+{r['cpu_serve']:.1f}" if r["cpu_serve"]
                                                  is not None else "")
            st = r.get("stats") or {}
            note = (f"messages={st.get('messages')} folders={st.get('folders')} "
                    f"index={(r.get('index_bytes') or 0) / 1e6:.0f}MB") if st else ""
            if r.get("error"):
                note += " ERROR"
            print(f"{r['tool']:22} {r['cache']:5} {r['wall']:8.2f} {r['mb_s'] or 0:7.1f} {cpu:>13} "
                  f"{r['mb_s_per_core'] or 0:9.1f} {(r['out_bytes'] or 0) / 1e6:7.0f} "
                  f"{r['sync_after'] or 0:7.2f} {(r['maxrss_kb'] or 0) / 1024:9.1f} {r['rc']:>3} "
                  f"{r['busy_cores_before']:5.2f}  {note}")
        print("-" * W)
        print("(2) snapshot of the unchanged user vs stat walk (C: readdir + lstat of every entry "
              "of the user's folder dirs)")
        print(f"{'tool':32} {'cache':5} {'n':>3} {'min s':>8} {'median s':>9} {'max s':>8} "
              f"{'cpu s (med)':>11}  notes")
        seen = []
        for r in R["incremental"]:
            key = (r["tool"], r["cache"])
            if key in seen:
                continue
            seen.append(key)
            rows = [x for x in R["incremental"] if (x["tool"], x["cache"]) == key]
            a = self.agg(rows)
            cpu = self.agg(rows, "cpu_tool")
            note = rows[0].get("walk") or ""
            if any(x["error"] for x in rows):
                note += " ERROR"
            if r["tool"].startswith("cyrsync"):
                sc = self.agg(rows, "cpu_serve")
                note += f"serve cpu {sc['median']:.3f}s" if sc else ""
            print(f"{r['tool']:32} {r['cache']:5} {a['n']:3} {a['min']:8.3f} {a['median']:9.3f} "
                  f"{a['max']:8.3f} {cpu['median'] if cpu else 0:11.3f}  {note}")
        print("-" * W)
        print("(3) one message: `cyrsync restore --folder F --uid N --to DIR` (wall of the command;"
              " inside = preload constructor -> destructor) vs `tar xzf ARCHIVE files/<sha1>`")
        if R.get("restore_busy_cores_before") is not None:
            print(f"    machine before the restores: {R['restore_busy_cores_before']:.2f} cores busy")
        b = R["baseline"].get("cyrsync_help_wall")
        if b:
            print(f"    baseline `cyrsync --help` wall (warm): min/median/max "
                  f"{ms(b['min'])}/{ms(b['median'])}/{ms(b['max'])} ms")
        print(f"{'tool':32} {'cache':5} {'n':>3} {'ok':>3} {'wall min/med/max ms':>24} "
              f"{'inside min/med/max ms':>24} {'startup med ms':>14} {'cpu med ms':>10}")
        for tool, rows_all in (("cyrsync restore --folder --uid", R["restore"]),
                               ("tar xzf", R["tar_extract"]),
                               ("tar xzf --occurrence=1", R["tar_extract"])):
            for cache in self.a.caches:
                rows = [r for r in rows_all if r["tool"] == tool and r["cache"] == cache]
                if not rows:
                    continue
                a, i = self.agg(rows), self.agg(rows, "inside")
                s, c = self.agg(rows, "startup"), self.agg(rows, "cpu")
                wtxt = f"{ms(a['min'])}/{ms(a['median'])}/{ms(a['max'])}"
                itxt = f"{ms(i['min'])}/{ms(i['median'])}/{ms(i['max'])}" if i else "-"
                print(f"{tool:32} {cache:5} {len(rows):3} {sum(r['ok'] for r in rows):3} "
                      f"{wtxt:>24} {itxt:>24} {ms(s['median']) if s else '-':>14} "
                      f"{ms(c['median']) if c else '-':>10}")
        for what, lines in ((R.get("profile") or {}).get("top_children") or {}).items():
            print(f"profile {what}: perf, % of this process's on-CPU samples, inclusive "
                  "(children) / self, selected symbols:")
            for line in lines:
                print("    " + line)
        if R.get("serve_vmhwm_kb"):
            print(f"cyrsync serve VmHWM over the whole run: {R['serve_vmhwm_kb'] / 1024:.1f} MB")
        for n in R["notes"]:
            print(f"NOTE: {n}")
        print("-" * W)
        print(f"{'ratio':88} {'target':>10} {'met':>5}")
        for r in R["ratios"]:
            ok = "-" if r["ok"] is None else ("yes" if r["ok"] else "NO")
            print(f"{r['text']:88} {r['target'] or '':>10} {ok:>5}")
        print("=" * W, flush=True)

    # ---- main -------------------------------------------------------------------------------
    def run(self):
        a = self.a
        os.makedirs(self.work, exist_ok=True)
        if os.listdir(self.work) and not a.force:
            sys.exit(f"{self.work} is not empty (use --force to wipe it)")
        for d in os.listdir(self.work):
            p = os.path.join(self.work, d)
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        sb.QUIET["max_wait"] = a.quiet_wait
        t_all = time.monotonic()
        self.build_tools()
        with open(self.bin, "rb") as f:
            bin_sha = hashlib.sha256(f.read()).hexdigest()
        git = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        self.results["params"] = {
            "messages": a.n_messages, "folders": a.n_folders, "scale": a.scale, "level": a.level,
            "templates": a.templates, "seed": a.seed, "caches": a.caches,
            "restore_samples": a.restore_samples, "tar_samples": a.tar_samples,
            "incremental_reps": a.reps, "binary": a.binary, "binary_sha256": bin_sha,
            "binary_mtime": time.ctime(os.path.getmtime(a.binary)), "git_head": git,
            "git_dirty_files": dirty.splitlines(), "cpus": os.cpu_count(),
            "kernel": os.uname().release, "workdir": self.work,
            "tar": subprocess.run(["tar", "--version"], capture_output=True,
                                  text=True).stdout.splitlines()[0],
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            self.check_space()
            log(f"building the spool: user {USER}, {a.n_messages} messages in {a.n_folders} "
                "folders")
            self.build_spool()
            self.count_tree()
            self.start_daemon()
            log("== (1) first snapshot vs tar czf")
            first = []
            if a.first_reps == 1:
                for cache in a.caches:
                    self.run_tar_create(cache)
                for cache in a.caches:
                    first.append(self.run_first_snapshot(cache))
            else:
                # interleaved pairs: on a shared machine the two sides of a pair see the same load
                for rep in range(1, a.first_reps + 1):
                    for cache in a.caches:
                        self.run_tar_create(cache)
                        first.append(self.run_first_snapshot(cache, rep))
                        if len(first) > 1 and not first[-2]["error"]:
                            shutil.rmtree(first[-2]["archive_dir"], ignore_errors=True)  # disk
            ok = [r for r in first if not r["error"]]
            if not ok:
                raise RuntimeError("no first snapshot succeeded")
            keep = ok[-1]
            # the other archives are not needed any more (disk)
            for r in first:
                if r is not keep:
                    shutil.rmtree(r["archive_dir"], ignore_errors=True)
            log("== (2) unchanged snapshot vs stat walk")
            time.sleep(1.1)
            for cache in a.caches:
                for rep in range(1, a.reps + 1):
                    self.run_incremental(keep["conf"], cache, rep)
                    self.run_statwalk(cache, rep)
            self.phase_restore(keep["conf"], keep["archive_dir"])
            if a.profile:
                self.profile_first(a.profile)
            self.stop_daemon()
        finally:
            with contextlib.suppress(Exception):
                self.stop_daemon()
            with contextlib.suppress(Exception):
                self.cy.stop()
            self.results["total_seconds"] = time.monotonic() - t_all
            self.ratios()
            self.print_report()
            if a.json:
                with open(a.json, "w") as f:
                    json.dump(self.results, f, indent=1, default=str)
                log(f"wrote {a.json}")
            if not a.keep:
                log(f"removing {self.work}")
                shutil.rmtree(self.work, ignore_errors=True)


def timed_sync():
    t = time.monotonic()
    os.sync()
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--folders", type=int, default=1_000)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies --messages and --folders")
    ap.add_argument("--level", type=int, default=1, help="compression_level in snapshot.json")
    ap.add_argument("--workdir", default="/tmp/csnap", help="keep it short: unix socket paths")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "cyrsync"))
    ap.add_argument("--json", help="write all results as JSON here")
    ap.add_argument("--caches", default="cold,warm", help="cold,warm | cold | warm")
    ap.add_argument("--restore-samples", type=int, default=20)
    ap.add_argument("--tar-samples", type=int, default=3,
                    help="messages extracted with tar xzf per cache state (each reads the "
                         "whole archive)")
    ap.add_argument("--no-tar-occurrence", dest="tar_occurrence", action="store_false",
                    help="skip the informational `tar xzf --occurrence=1` runs")
    ap.add_argument("--reps", type=int, default=3, help="unchanged snapshot / stat walk repeats")
    ap.add_argument("--first-reps", type=int, default=1,
                    help="first snapshot and tar czf, as this many interleaved pairs per cache "
                         "state (the lower median pair ratio is reported)")
    ap.add_argument("--templates", type=int, default=200, help="real seed messages via LMTP")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--validate-sample", type=int, default=40, help="folders for reconstruct -n -G")
    ap.add_argument("--ignore-validation", action="store_true")
    ap.add_argument("--timeout", type=int, default=3600, help="per measured run, seconds")
    ap.add_argument("--quiet-wait", type=float, default=30.0,
                    help="before each long run wait up to this long for an idle machine")
    ap.add_argument("--profile", type=int, default=0, metavar="SECONDS",
                    help="at the end, perf-profile an extra first snapshot for SECONDS")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--force", action="store_true", help="wipe a non-empty --workdir")
    args = ap.parse_args()
    args.n_messages = max(1, int(round(args.messages * args.scale)))
    args.n_folders = max(2, int(round(args.folders * args.scale)))
    args.caches = [c for c in args.caches.split(",") if c]
    cl.require_environment()
    for tool in ("tar", "gzip", "cc"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} missing: cmake --build build -j2 --target cyrsync")

    def stop(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    SnapBench(args).run()


if __name__ == "__main__":
    main()
