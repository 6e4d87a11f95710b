#!/usr/bin/env python3
"""cyrsync benchmark: cyrsync vs rsync vs Cyrus's own sync_client on a generated Cyrus 3.6.1 spool.

What it does (details and how to read the output: bench/README.md):
  1. builds a master spool of --messages N in --folders F (scaled by --scale): users and folders
     are created over IMAP on a real private Cyrus, a seed of real messages is delivered over
     LMTP, Cyrus is stopped, and the bulk is generated as files (message files, cyrus.cache,
     cyrus.index v17 with CRCs, GUIDs, sync CRC); a sample is validated with `reconstruct -n -G`;
  2. measures, cold (`sync; echo 3 > /proc/sys/vm/drop_caches`) and warm:
     (a) initial seed into an empty replica, (b) an unchanged pass, (c) a pass after 1 % new mail
     (IMAP APPEND on the running master), (d) `cyrsync sync -A --full` vs a bare readdir + d_type
     walk (small C program), (e) peak RSS of `cyrsync sync` and `cyrsync serve`;
  3. prints the results and the ratios against the targets; --json writes everything.

Python 3 standard library only. Needs root, Debian's cyrus-imapd + cyrus-replication, rsync, cc.
"""

import argparse
import contextlib
import grp
import hashlib
import json
import math
import multiprocessing
import os
import pwd
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import cyruslab as cl  # noqa: E402
import cyrsync_lab as lab  # noqa: E402

CYRUS_BIN = cl.CYRUS_BIN
SUBFOLDERS = ["Sent", "Drafts", "Trash", "Archive", "Work", "Work.Projects", "Lists",
              "Lists.Dev", "Notes"]          # + INBOX = 10 folders per user
SEED_USER = "benchseed"
TOKEN_RE = re.compile(rb"BNCH\d{12}")
INDEX_MINOR = 17
HDR_SIZE = 160
REC_SIZE = 112
CACHE_ITEMS = 10
FLAG_ANSWERED, FLAG_FLAGGED, FLAG_SEEN = 0x1, 0x2, 0x10
REC_STRUCT = struct.Struct(">9I16sII20sQQQI")   # v17 record up to (not incl.) record_crc

TARGETS = {
    "unchanged_vs_rsync_warm": 50.0,   # cyrsync >= 50x faster than rsync, warm
    "unchanged_vs_rsync_cold": 20.0,   # >= 20x, cold
    "full_vs_walk": 1.5,               # --full <= 1.5x the bare walk
    "seed_files_per_s_vs_rsync": 3.0,  # >= 3x rsync's files/s
    "peak_rss_mb": 32.0,               # <= 32 MB (sync and serve)
}

WALKER_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
/* bare readdir + d_type walk: no stat() unless the file system returns DT_UNKNOWN */
static long long files, dirs, unknown;
static void walk(int dfd) {
  DIR *d = fdopendir(dfd);
  if (!d) { close(dfd); return; }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    unsigned char t = e->d_type;
    if (t == DT_UNKNOWN) {
      struct stat st;
      unknown++;
      if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) t = DT_DIR;
    }
    if (t == DT_DIR) {
      int fd = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) { dirs++; walk(fd); }
    } else {
      files++;
    }
  }
  closedir(d);
}
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    int fd = open(argv[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) { perror(argv[i]); return 1; }
    dirs++;
    walk(fd);
  }
  printf("files=%lld dirs=%lld dt_unknown=%lld\n", files, dirs, unknown);
  return 0;
}
"""

NOFSYNC_C = r"""
#include <stddef.h>
/* LD_PRELOAD for the master Cyrus while the spool is BUILT (never while measuring). */
int fsync(int fd) { (void)fd; return 0; }
int fdatasync(int fd) { (void)fd; return 0; }
"""

WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda omicron sigma omega report "
         "meeting budget quarterly invoice release server mailbox replica backup restore plan "
         "draft review deadline coffee lunch holiday project customer support ticket update "
         "status weekly notes agenda minutes approval contract").split()


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# small utilities

def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def timed_sync():
    t = time.monotonic()
    os.sync()
    return time.monotonic() - t


def cpu_snapshot(pids=()):
    """(busy s, iowait s) of the whole machine from /proc/stat, plus utime+stime s of pids."""
    tck = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tck
    iowait = v[4] / tck
    procs = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            procs[pid] = (int(rest[11]) + int(rest[12])) / tck
        except (OSError, IndexError, ValueError):
            procs[pid] = None
    return busy, iowait, procs


QUIET = {"max_wait": 30.0, "busy_cores": 0.3}


def wait_quiet():
    """Waits (up to QUIET['max_wait'] s) until the machine is idle: less than
    QUIET['busy_cores'] cores busy over a 1 s sample. Other work on a shared 2-core machine
    (builds, test suites) would otherwise end up in the numbers. Returns (waited s, busy)."""
    t0 = time.monotonic()
    while True:
        b0 = cpu_snapshot()[0]
        time.sleep(1.0)
        busy = cpu_snapshot()[0] - b0
        waited = time.monotonic() - t0
        if busy < QUIET["busy_cores"] or waited >= QUIET["max_wait"]:
            return waited, busy
        time.sleep(2.0)


def wait_exact(p, timeout):
    """Popen.wait() with a timeout polls with growing sleeps (0.5 ms doubling up to 50 ms), so
    short wall times came out quantized (0.032, 0.064, 0.117 s). A blocking waitpid() returns
    when the child exits; a timer kills it at the timeout."""
    t = threading.Timer(timeout, p.kill)
    t.daemon = True
    t.start()
    try:
        return p.wait()
    finally:
        t.cancel()


def run_measured(cmd, timeout=7200, env=None, watch_pids=()):
    """Runs cmd; returns dict(wall, rc, maxrss_kb, out). Peak RSS comes from /usr/bin/time (%M):
    wait4()'s ru_maxrss of a child forked from this Python process would include the RSS it
    inherited before exec()."""
    out_f = tempfile.TemporaryFile()
    fd, rss_path = tempfile.mkstemp(prefix="csbench-rss")
    os.close(fd)
    waited, busy_before = wait_quiet()
    load = open("/proc/loadavg").read().split()[0]
    c0 = cpu_snapshot(watch_pids)
    t0 = time.monotonic()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M %U %S", "-o", rss_path] + list(cmd),
                         stdout=out_f,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    wait_exact(p, timeout)
    wall = time.monotonic() - t0
    c1 = cpu_snapshot(watch_pids)
    out_f.seek(0)
    out = out_f.read().decode(errors="replace")
    out_f.close()
    maxrss, tool_cpu = 0, None
    try:
        with open(rss_path) as f:
            last = f.read().strip().splitlines()[-1].split()
        maxrss, tool_cpu = int(last[0]), float(last[1]) + float(last[2])
    except (OSError, ValueError, IndexError):
        pass
    os.unlink(rss_path)
    cpu = {"tool": tool_cpu, "machine_busy": c1[0] - c0[0], "machine_iowait": c1[1] - c0[1],
           "loadavg1_before": float(load), "quiet_wait_s": waited,
           "busy_cores_before": busy_before}
    for pid in watch_pids:
        if c0[2].get(pid) is not None and c1[2].get(pid) is not None:
            cpu["serve"] = c1[2][pid] - c0[2][pid]
    return {"wall": wall, "rc": p.returncode, "maxrss_kb": maxrss, "out": out, "cpu": cpu}


def vm_hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def compile_c(src, out, shared=False):
    srcf = out + ".c"
    with open(srcf, "w") as f:
        f.write(src)
    cmd = ["cc", "-O2", "-o", out, srcf] if not shared else \
        ["cc", "-O2", "-shared", "-fPIC", "-o", out, srcf]
    subprocess.run(cmd, check=True)
    return out


@contextlib.contextmanager
def env_var(name, value):
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def rm_tree_contents(path):
    if os.path.isdir(path):
        shutil.rmtree(path)


def fmt_s(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


# --------------------------------------------------------------------------------------------
# message content

def make_message(rng, token: str, target_size: int, to: str) -> bytes:
    """A plain-text RFC 5322 message of about target_size bytes (CRLF). `token` appears in
    Message-ID and X-Bench-Serial only."""
    sender = rng.choice(["newsletter@example.org", "boss@example.com", "friend@example.net",
                         "robot@ci.example.com", "sales@example.biz"])
    subj = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 8)))
    day = rng.randrange(1, 28)
    hdr = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subj}\r\n"
           f"Date: Mon, {day:02d} Jan 2024 {rng.randrange(24):02d}:{rng.randrange(60):02d}:00 +0000\r\n"
           f"Message-ID: <{token}@bench.cyrsync.test>\r\nX-Bench-Serial: {token}\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
           "Content-Transfer-Encoding: 7bit\r\n\r\n")
    lines = []
    size = len(hdr)
    while size < target_size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 14))) + "\r\n"
        lines.append(line)
        size += len(line)
    return (hdr + "".join(lines)).encode()


# --------------------------------------------------------------------------------------------
# cyrus.index / cyrus.cache

def cache_entry_len(cache: bytes, off: int) -> int:
    p = off
    for _ in range(CACHE_ITEMS):
        ln = struct.unpack_from(">I", cache, p)[0]
        p += 4 + ((ln + 3) & ~3)
    return p - off


def flag_crc(flags):
    c = 0
    if flags & FLAG_ANSWERED:
        c ^= zlib.crc32(b"\\answered")
    if flags & FLAG_FLAGGED:
        c ^= zlib.crc32(b"\\flagged")
    if flags & FLAG_SEEN:
        c ^= zlib.crc32(b"\\seen")
    return c


FLAGCRC = {f: flag_crc(f) for f in range(0x20)}


def read_templates(folder_dir):
    """Templates = the real messages Cyrus delivered into the seed folder: file bytes, the
    cache entry Cyrus wrote for them and the parsed-content fields of their index record."""
    with open(os.path.join(folder_dir, "cyrus.index"), "rb") as f:
        idx = f.read()
    with open(os.path.join(folder_dir, "cyrus.cache"), "rb") as f:
        cache = f.read()
    minor, start, rsize, n = struct.unpack_from(">IIII", idx, 8)
    assert minor == INDEX_MINOR and start == HDR_SIZE and rsize == REC_SIZE, (minor, start, rsize)
    out = []
    for i in range(n):
        rec = idx[HDR_SIZE + i * REC_SIZE:HDR_SIZE + (i + 1) * REC_SIZE]
        uid, _idate, sentdate, size, header_size, gmtime, cache_off = struct.unpack_from(
            ">7I", rec, 0)
        cache_version = struct.unpack_from(">I", rec, 56)[0]
        assert cache_version >> 16 == 0
        with open(os.path.join(folder_dir, f"{uid}."), "rb") as f:
            data = f.read()
        assert len(data) == size
        centry = cache[cache_off:cache_off + cache_entry_len(cache, cache_off)]
        tokens = set(TOKEN_RE.findall(data))
        assert len(tokens) == 1, tokens
        token = tokens.pop()
        assert zlib.crc32(centry) == struct.unpack_from(">I", rec, 104)[0], "cache crc"
        out.append({"data": data, "cache": centry, "token": token, "sentdate": sentdate,
                    "header_size": header_size, "gmtime": gmtime, "cache_version": cache_version})
    return out


_TEMPLATES = None
_OWNER = None


def _gen_init(templates, owner):
    global _TEMPLATES, _OWNER
    _TEMPLATES = templates
    _OWNER = owner


def gen_folder(task):
    """Writes n generated messages, cyrus.cache and cyrus.index into one (empty) folder."""
    path, fidx, n, seed, t_start, t_end = task
    if n == 0:
        return (0, 0)
    rng = random.Random(seed)
    templates = _TEMPLATES
    uid_c, gid_c = _OWNER
    ipath = os.path.join(path, "cyrus.index")
    with open(ipath, "rb") as f:
        old = f.read()
    hdr = bytearray(old[:HDR_SIZE])
    generation, _fmt, minor, start, rsize, num = struct.unpack_from(">6I", hdr, 0)
    assert minor == INDEX_MINOR and start == HDR_SIZE and rsize == REC_SIZE and num == 0, path
    highestmodseq = struct.unpack_from(">Q", hdr, 68)[0]
    cache = bytearray(struct.pack(">I", generation))
    recs = bytearray()
    synccrc = 0
    annotcrc = struct.unpack_from(">I", hdr, 120)[0]   # synccrcs.annot (12345678 when empty)
    used = answered = flagged = unseen = 0
    step = (t_end - t_start) / n
    modseq = highestmodseq
    last_date = 0
    O = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    for uid in range(1, n + 1):
        t = templates[rng.randrange(len(templates))]
        token = b"BNCH%012d" % (fidx * 1000000 + uid)
        data = t["data"].replace(t["token"], token)
        centry = t["cache"].replace(t["token"], token)
        guid = hashlib.sha1(data).digest()
        fd = os.open(os.path.join(path, f"{uid}."), O, 0o600)
        try:
            os.write(fd, data)
            os.fchown(fd, uid_c, gid_c)
        finally:
            os.close(fd)
        idate = int(t_start + step * (uid - 1) + rng.random() * step)
        last_date = max(last_date, idate)
        r = rng.random()
        flags = FLAG_SEEN if r < 0.6 else 0
        if rng.random() < 0.03:
            flags |= FLAG_FLAGGED
        if rng.random() < 0.05:
            flags |= FLAG_ANSWERED
        modseq += 1
        cache_off = len(cache)
        cache += centry
        rec = REC_STRUCT.pack(uid, idate, t["sentdate"], len(data), t["header_size"], t["gmtime"],
                              cache_off, idate, flags, b"\0" * 16, idate, t["cache_version"],
                              guid, modseq, 0, modseq, zlib.crc32(centry))
        recs += rec + struct.pack(">I", zlib.crc32(rec))
        used += len(data)
        answered += bool(flags & FLAG_ANSWERED)
        flagged += bool(flags & FLAG_FLAGGED)
        unseen += not (flags & FLAG_SEEN)
        synccrc ^= zlib.crc32(b"%d %d %d (%d) %d %s" % (uid, modseq, idate, FLAGCRC[flags], idate,
                                                        guid.hex().encode()))
        # v16+ "virtual annotations" savedate and createdmodseq count in the annot sync CRC
        annotcrc ^= zlib.crc32(b"%d /vendor/cmu/cyrus-imapd/savedate  %d" % (uid, idate))
        annotcrc ^= zlib.crc32(b"%d /vendor/cmu/cyrus-imapd/createdmodseq  %d" % (uid, modseq))
    struct.pack_into(">I", hdr, 20, n)                 # num_records
    struct.pack_into(">I", hdr, 24, last_date)         # last_appenddate
    struct.pack_into(">I", hdr, 28, n)                 # last_uid
    struct.pack_into(">Q", hdr, 32, used)              # quota_mailbox_used
    struct.pack_into(">III", hdr, 48, 0, answered, flagged)
    struct.pack_into(">Q", hdr, 68, modseq)            # highestmodseq
    struct.pack_into(">I", hdr, 84, n)                 # exists
    struct.pack_into(">I", hdr, 100, synccrc)          # synccrcs.basic
    struct.pack_into(">I", hdr, 120, annotcrc)         # synccrcs.annot
    struct.pack_into(">I", hdr, 124, unseen)           # unseen (v14+)
    struct.pack_into(">I", hdr, 156, zlib.crc32(bytes(hdr[:156])))
    for name, blob in (("cyrus.cache", cache), ("cyrus.index", hdr + recs)):
        p = os.path.join(path, name)
        fd = os.open(p + ".NEW", O, 0o600)
        try:
            os.write(fd, blob)
            os.fchown(fd, uid_c, gid_c)
        finally:
            os.close(fd)
        os.rename(p + ".NEW", p)
    return (n, used)


# --------------------------------------------------------------------------------------------
# the benchmark

class Bench:
    def __init__(self, args):
        self.a = args
        self.work = os.path.abspath(args.workdir)
        self.results = {"params": {}, "spool": {}, "runs": [], "serve_vmhwm_kb": {},
                        "not_measured": {}, "ratios": [], "notes": []}
        self.master = cl.CyrusInstance(os.path.join(self.work, "master"), "bench-master")
        # Every seed goes into a fresh directory; old replicas are deleted only at the end:
        # deleting 10^4-10^6 files just before a run made the next runs 2-7x slower here (ext4
        # mounted with "discard"; the freed blocks are trimmed while the next run writes).
        self.replica_no = 0
        self.rcs = None
        self.rsc = None
        self.rsync_dst = None
        self.daemon = None
        self.pki = None
        self.folders = []      # (internal name, user, imap name for the owner, path, weight)
        self.sc_port = None
        self.tools = os.path.join(self.work, "tools")

    # ---- helpers ----------------------------------------------------------------------------
    def record(self, phase, tool, cache, res, extra=None):
        row = {"phase": phase, "tool": tool, "cache": cache, "wall": res["wall"], "rc": res["rc"],
               "maxrss_kb": res["maxrss_kb"], "cpu": res.get("cpu")}
        if extra:
            row.update(extra)
        if tool.startswith("cyrsync") and "walk" not in tool:
            st = lab.parse_stats(res["out"])
            row["stats"] = st
            row["seconds"] = st.get("seconds")
            if res["rc"] != 0 or not st:
                row["error"] = res["out"][-1500:]
        elif res["rc"] != 0:
            row["error"] = res["out"][-1500:]
        self.results["runs"].append(row)
        sec = f" seconds={row['seconds']}" if row.get("seconds") is not None else ""
        log(f"  {phase:10} {tool:22} {cache:4} wall={res['wall']:.3f}s{sec} rc={res['rc']} "
            f"maxrss={res['maxrss_kb'] / 1024:.1f}MB" + (f" {extra}" if extra else ""))
        if row.get("error"):
            log("    ERROR: " + row["error"][-600:].replace("\n", "\n    "))
        return row

    def walk_count(self, *paths):
        r = subprocess.run([self.walker, *paths], capture_output=True, text=True, check=True)
        return dict(kv.split("=") for kv in r.stdout.split())

    @contextlib.contextmanager
    def fast_master(self):
        """Master Cyrus running with fsync disabled (spool building / new mail only)."""
        with env_var("LD_PRELOAD", self.nofsync):
            self.master.start()
        try:
            yield
        finally:
            self.master.stop()

    # ---- setup ------------------------------------------------------------------------------
    def check_space(self, n_msgs):
        st = os.statvfs(self.work)
        free = st.f_bavail * st.f_frsize
        ifree = st.f_favail
        n_seeds = len(self.a.seed_caches) * (2 + (0 if self.a.skip_workers1 else 1) +
                                        (0 if self.a.skip_sync_client else 1))
        copies = 1 + n_seeds
        need = int(n_msgs * 1.06 * (4096 + 400) * copies + 2e9)
        need_i = int(n_msgs * 1.06 * copies * 1.05 + 1e5)
        self.results["spool"]["free_bytes_before"] = free
        log(f"free space {free / 1e9:.1f} GB, need about {need / 1e9:.1f} GB for {copies} copies; "
            f"free inodes {ifree}, need about {need_i}")
        if free < need or ifree < need_i:
            sys.exit(f"not enough free space/inodes in {self.work}")

    def build_tools(self):
        os.makedirs(self.tools, exist_ok=True)
        self.walker = compile_c(WALKER_C, os.path.join(self.tools, "walk"))
        self.nofsync = compile_c(NOFSYNC_C, os.path.join(self.tools, "nofsync.so"), shared=True)

    def create_folders(self, n_folders):
        """Users b00000.. with INBOX + SUBFOLDERS, created over IMAP (4 admin connections)."""
        users = []
        left = n_folders
        u = 0
        while left > 0:
            k = min(10, left)
            users.append((f"b{u:05d}", ["INBOX"] + SUBFOLDERS[:k - 1]))
            left -= k
            u += 1
        errors = []

        def work(chunk):
            try:
                a = self.master.imap(cl.ADMIN)
                try:
                    for user, boxes in chunk:
                        for b in boxes:
                            name = f"user.{user}" if b == "INBOX" else f"user.{user}.{b}"
                            cl._check(a.create(cl.q(name)), "CREATE " + name)
                finally:
                    a.logout()
            except Exception as e:   # noqa: BLE001
                errors.append(repr(e))

        nthreads = 4
        ths = [threading.Thread(target=work, args=(users[i::nthreads],)) for i in range(nthreads)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        if errors:
            raise RuntimeError("CREATE failed: " + "; ".join(errors[:3]))
        a = self.master.imap(cl.ADMIN)
        try:
            cl._check(a.create(cl.q(f"user.{SEED_USER}")), "CREATE seed")
        finally:
            a.logout()
        return users

    def deliver_templates(self, n, rng):
        lm = self.master.lmtp()
        try:
            for i in range(n):
                size = rng.randrange(1024, 4096) - 330   # lmtpd adds ~330 bytes of headers
                msg = make_message(rng, "BNCH%012d" % (999999000000 + i), size,
                                   f"{SEED_USER}@cyruslab")
                res = lm.deliver("sender@example.org", [SEED_USER], msg)
                code, text = res[SEED_USER]
                if not 200 <= code < 300:
                    raise RuntimeError(f"LMTP: {code} {text}")
        finally:
            lm.close()

    def mailbox_paths(self):
        data = json.loads(self.master.tool("ctl_mboxlist", "-d", check=True).stdout)
        out = {}
        for name, v in data.items():
            uid = v.get("uniqueid")
            if not uid or "d" in str(v.get("mbtype", "")):
                continue
            out[name] = os.path.join(self.master.spool, "uuid", uid[0], uid[1], uid)
        return out

    def build_spool(self):
        a = self.a
        n_msgs, n_folders = a.n_messages, a.n_folders
        self.check_space(n_msgs)
        self.master.setup()
        rng = random.Random(a.seed)
        t0 = time.monotonic()
        with self.fast_master():
            users = self.create_folders(n_folders)
            t_create = time.monotonic() - t0
            log(f"created {n_folders} folders for {len(users)} users over IMAP in {t_create:.1f}s")
            t1 = time.monotonic()
            self.deliver_templates(a.templates, rng)
            t_deliver = time.monotonic() - t1
        paths = self.mailbox_paths()
        # mbpath cross-check of the computed path of one folder
        r = self.master.tool("mbpath", f"user.{users[0][0]}")
        if r.stdout.strip() != paths[f"user.{users[0][0]}"]:
            raise RuntimeError(f"path mismatch: mbpath {r.stdout.strip()!r}")
        templates = read_templates(paths[f"user.{SEED_USER}"])
        # folders and message counts (log-normal spread: a few big folders, many small ones)
        folders = []
        for user, boxes in users:
            for b in boxes:
                name = f"user.{user}" if b == "INBOX" else f"user.{user}.{b}"
                imap_name = "INBOX" if b == "INBOX" else f"INBOX.{b}"
                folders.append([name, user, imap_name, paths[name], rng.lognormvariate(0, 1.0)])
        total_w = sum(f[4] for f in folders)
        counts = [int(n_msgs * f[4] / total_w) for f in folders]
        for i in rng.sample(range(len(folders)), n_msgs - sum(counts)):
            counts[i] += 1
        self.folders = folders
        now = int(time.time())
        tasks = [(f[3], i, counts[i], rng.randrange(2**32), now - 5 * 365 * 86400, now - 3600)
                 for i, f in enumerate(folders)]
        owner = (pwd.getpwnam(cl.CYRUS_USER).pw_uid, grp.getgrnam(cl.CYRUS_GROUP).gr_gid)
        t2 = time.monotonic()
        done = used = 0
        # forkserver: a child forked from this process after its IMAP threads ran could
        # inherit a lock one of them held and hang (seen once); forkserver children start clean
        ctx = multiprocessing.get_context("forkserver")
        with ctx.Pool(os.cpu_count(), initializer=_gen_init, initargs=(templates, owner)) as pool:
            for n, u in pool.imap_unordered(gen_folder, tasks, chunksize=8):
                done += n
                used += u
        t_gen = time.monotonic() - t2
        log(f"generated {done} messages ({used / 1e6:.0f} MB) in {t_gen:.1f}s "
            f"({done / max(t_gen, 1e-9):.0f} msg/s)")
        sp = self.results["spool"]
        sp.update({
            "method": "users/folders created over IMAP on the master Cyrus, "
                      f"{a.templates} seed messages delivered over LMTP, bulk generated as files "
                      "(message files, cyrus.cache entries cloned from the seed with a same-length "
                      "unique token, cyrus.index v17 written with GUID/CRC32/sync CRC), sample "
                      "validated with reconstruct -n -G",
            "users": len(users), "folders": len(folders) + 1, "generated_messages": done,
            "seed_messages": a.templates, "message_bytes": used,
            "max_folder_messages": max(counts), "empty_folders": counts.count(0),
            "t_create_imap": t_create, "t_deliver_seed": t_deliver, "t_generate": t_gen})
        self.validate(rng, "after generation")

    def validate(self, rng, when, extra_names=()):
        """reconstruct -n -G on a sample; any line that is not a mailbox name is a finding."""
        names = [f[0] for f in self.folders]
        sample = set(rng.sample(names, min(self.a.validate_sample, len(names))))
        sample.update(extra_names)
        sample.add(f"user.{SEED_USER}")
        sample = sorted(sample)
        t = time.monotonic()
        findings = []
        for i in range(0, len(sample), 50):
            chunk = sample[i:i + 50]
            r = self.master.tool("reconstruct", "-n", "-G", *chunk)
            for line in (r.stdout + r.stderr).splitlines():
                if line.strip() and line.strip() not in chunk:
                    findings.append(line.strip())
        dt = time.monotonic() - t
        v = self.results["spool"].setdefault("validation", [])
        v.append({"when": when, "folders_checked": len(sample), "findings": findings[:50],
                  "n_findings": len(findings), "seconds": dt})
        log(f"reconstruct -n -G on {len(sample)} folders ({when}): {len(findings)} findings "
            f"in {dt:.1f}s")
        for line in findings[:10]:
            log("   " + line)
        if findings and not self.a.ignore_validation:
            raise RuntimeError("generated spool failed validation (see findings above)")

    def count_master(self):
        c = self.walk_count(self.master.confdir, self.master.spool, self.master.sievedir)
        self.results["spool"]["master_files"] = int(c["files"])
        self.results["spool"]["master_dirs"] = int(c["dirs"])
        r = subprocess.run(["du", "-sb", self.master.spool], capture_output=True, text=True)
        self.results["spool"]["spool_bytes"] = int(r.stdout.split()[0])
        log(f"master: {c['files']} files, {c['dirs']} dirs in conf+spool+sieve; spool "
            f"{int(r.stdout.split()[0]) / 1e6:.0f} MB")

    # ---- new mail ---------------------------------------------------------------------------
    def new_mail(self, batch, fraction):
        n = max(1, int(round(self.results["spool"]["generated_messages"] * fraction)))
        rng = random.Random(self.a.seed * 1000 + batch)
        chosen = rng.choices(self.folders, weights=[f[4] for f in self.folders], k=n)
        per_user = {}
        for f in chosen:
            per_user.setdefault(f[1], []).append(f[2])
        items = sorted(per_user.items())
        errors = []
        counter = [0]
        lock = threading.Lock()

        def work(chunk, seed):
            r = random.Random(seed)
            try:
                for user, boxes in chunk:
                    c = self.master.imap(user)
                    try:
                        for box in boxes:
                            with lock:
                                counter[0] += 1
                                k = counter[0]
                            msg = make_message(r, f"new{batch}.{k}", r.randrange(700, 3700),
                                               f"{user}@cyruslab")
                            cl._check(c.append(cl.q(box), None, None, msg), "APPEND")
                    finally:
                        c.logout()
            except Exception as e:   # noqa: BLE001
                errors.append(repr(e))

        t = time.monotonic()
        with self.fast_master():
            ths = [threading.Thread(target=work, args=(items[i::4], rng.random())) for i in range(4)]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
        dt = time.monotonic() - t
        if errors:
            raise RuntimeError("APPEND failed: " + "; ".join(errors[:3]))
        touched = sorted({f[0] for f in chosen})
        log(f"new mail batch {batch}: {n} messages appended over IMAP into {len(touched)} folders "
            f"({len(per_user)} users) in {dt:.1f}s")
        self.results["spool"].setdefault("new_mail", []).append(
            {"batch": batch, "messages": n, "folders": len(touched), "seconds": dt})
        self.validate(rng, f"after new mail batch {batch}", extra_names=touched[:20])

    # ---- replicas ---------------------------------------------------------------------------
    def cyrsync_replica_reset(self):
        if self.daemon:
            self.stop_daemon()
        self.replica_no += 1
        self.rcs = cl.CyrusInstance(os.path.join(self.work, f"rcs{self.replica_no}"),
                                    f"bench-rcs{self.replica_no}")
        self.rcs.setup()
        self.daemon = lab.Daemon(self.rcs, self.pki)
        self.daemon.start()

    def stop_daemon(self, tag=None):
        if not self.daemon:
            return
        if tag and self.daemon.proc:
            hwm = vm_hwm_kb(self.daemon.proc.pid)
            self.results["serve_vmhwm_kb"][tag] = hwm
            log(f"  cyrsync serve VmHWM after {tag}: {hwm / 1024 if hwm else 0:.1f} MB")
        self.daemon.stop()
        self.daemon = None

    def serve_hwm_checkpoint(self, tag):
        if self.daemon and self.daemon.proc:
            hwm = vm_hwm_kb(self.daemon.proc.pid)
            self.results["serve_vmhwm_kb"][tag] = hwm
            log(f"  cyrsync serve VmHWM after {tag}: {hwm / 1024 if hwm else 0:.1f} MB")

    def rsync_replica_reset(self):
        self.replica_no += 1
        self.rsync_dst = os.path.join(self.work, f"rsync{self.replica_no}")
        os.makedirs(self.rsync_dst)

    def syncserver_replica_reset(self):
        if self.rsc:
            self.rsc.stop()
        self.replica_no += 1
        self.rsc = cl.CyrusInstance(os.path.join(self.work, f"rsc{self.replica_no}"),
                                    f"bench-rsc{self.replica_no}")
        self.rsc.setup()
        self.sc_port = cl._free_port()
        txt = open(self.rsc.cyrus_conf_path).read()
        txt = txt.replace("SERVICES {\n", "SERVICES {\n  syncserver  cmd=\"sync_server -C "
                          f"{self.rsc.conf_path}\" listen=\"127.0.0.1:{self.sc_port}\" prefork=0\n")
        with open(self.rsc.cyrus_conf_path, "w") as f:
            f.write(txt)
        mc = open(self.master.conf_path).read()
        mc = re.sub(r"(?m)^sync_(host|port|authname|password|try_imap):.*\n", "", mc)
        # sync_try_imap: no -- otherwise sync_client first speaks IMAP to the csync port and waits
        # 10 s for an answer that never comes (seen with strace) before it falls back.
        mc += (f"sync_host: 127.0.0.1\nsync_port: {self.sc_port}\nsync_authname: {cl.ADMIN}\n"
               f"sync_password: {cl.PASSWORD}\nsync_try_imap: no\n")
        with open(self.master.conf_path, "w") as f:
            f.write(mc)
        with env_var("LD_PRELOAD", None):
            self.rsc.start()

    # ---- tool runs --------------------------------------------------------------------------
    def run_cyrsync(self, phase, cache, *extra, workers=None):
        if cache == "cold":
            drop_caches()
        else:
            os.sync()
        cmd = lab.sync_cmd(self.master, self.daemon, "-A", *extra)
        if workers is not None:
            cmd += ["--workers", str(workers)]
        res = run_measured(cmd, timeout=self.a.timeout, watch_pids=self._serve_pids())
        name = "cyrsync" + (" --full" if "--full" in extra else "") + \
            (f" -w{workers}" if workers is not None else "")
        return self.record(phase, name, cache, res)

    def _serve_pids(self):
        return (self.daemon.proc.pid,) if self.daemon and self.daemon.proc else ()

    def run_rsync(self, phase, cache):
        if cache == "cold":
            drop_caches()
        else:
            os.sync()
        cmd = ["rsync", "-a", self.master.confdir, self.master.spool, self.master.sievedir,
               self.rsync_dst + "/"]
        return self.record(phase, "rsync -a", cache, run_measured(cmd, timeout=self.a.timeout))

    def seed_floor(self, caches, files):
        """The bare parallel copy (bench/copy_floor.cc): what any copier needs at least on this
        host, without temp names, ownership, durability or a network."""
        if not os.path.exists(self.a.copy_floor):
            self.results["not_measured"]["copy floor"] = f"{self.a.copy_floor} missing"
            return
        for cache in caches:
            self.replica_no += 1
            dst = os.path.join(self.work, f"floor{self.replica_no}")
            timed_sync()
            if cache == "cold":
                drop_caches()
            else:
                os.sync()
            cmd = [self.a.copy_floor, self.master.confdir, self.master.spool,
                   self.master.sievedir, dst]
            res = run_measured(cmd, timeout=self.a.timeout)
            row = self.record("seed", "copy floor", cache, res,
                              extra={"floor": res["out"].strip()[-300:]})
            self.seed_extra(row, files)

    def run_sync_client(self, phase, cache):
        if cache == "cold":
            drop_caches()
        else:
            os.sync()
        cmd = [os.path.join(CYRUS_BIN, "sync_client"), "-C", self.master.conf_path, "-A"]
        with env_var("LD_PRELOAD", None):
            res = run_measured(cmd, timeout=self.a.timeout)
        return self.record(phase, "sync_client -A", cache, res)

    def run_walk(self, phase, cache, *paths, name="walk (readdir+d_type)"):
        if cache == "cold":
            drop_caches()
        else:
            os.sync()
        res = run_measured([self.walker, *paths], timeout=self.a.timeout)
        return self.record(phase, name, cache, res, extra={"walk": res["out"].strip()})

    def seed_extra(self, row, files):
        row["sync_after_s"] = timed_sync()
        row["files"] = files
        row["files_per_s"] = files / row["wall"] if row["wall"] > 0 else None
        log(f"    + sync() afterwards {row['sync_after_s']:.2f}s; {row['files_per_s']:.0f} files/s")

    # ---- phases -----------------------------------------------------------------------------
    def phase_seed(self):
        log("== (a) initial seed into an empty replica")
        files = self.results["spool"]["master_files"]
        caches = self.a.seed_caches
        for workers in (None, 1):
            if workers == 1 and self.a.skip_workers1:
                continue
            for cache in caches:
                self.cyrsync_replica_reset()
                timed_sync()
                row = self.run_cyrsync("seed", cache, workers=workers)
                self.seed_extra(row, files)
                self.serve_hwm_checkpoint(f"seed {row['tool']} {cache}")
        c = self.walk_count(self.rcs.confdir, self.rcs.spool, self.rcs.sievedir)
        self.results["spool"]["cyrsync_replica_files"] = int(c["files"])
        log(f"  cyrsync replica now has {c['files']} files (master {files})")
        for cache in caches:
            self.rsync_replica_reset()
            timed_sync()
            row = self.run_rsync("seed", cache)
            self.seed_extra(row, files)
        self.seed_floor(caches, files)
        if not self.a.skip_sync_client:
            for cache in caches:
                self.syncserver_replica_reset()
                timed_sync()
                row = self.run_sync_client("seed", cache)
                self.seed_extra(row, files)
                if row["rc"] != 0:
                    self.results["not_measured"]["sync_client"] = (
                        f"sync_client -A exited {row['rc']}: " + row.get("error", "")[-300:])
                    break
            self.rsc.stop()
            c = self.walk_count(self.rsc.confdir, self.rsc.spool, self.rsc.sievedir)
            self.results["spool"]["syncserver_replica_files"] = int(c["files"])
            log(f"  sync_server replica now has {c['files']} files")
            with env_var("LD_PRELOAD", None):
                self.rsc.start()

    def all_tools(self, phase, cache, prime=False):
        """prime: each tool first runs once untimed (phase "prime"), so that a warm run follows
        a run of the same tool. Otherwise a "warm" run follows the other tools' runs and, on
        this VM, whatever the kernel reclaimed meanwhile (DAMON reclaim is on: a pass repeated
        after 60 s idle took 0.38 s instead of 0.22 s at 10k folders)."""
        rows = {}
        runs = [("cyrsync", self.run_cyrsync), ("rsync", self.run_rsync)]
        if not self.a.skip_sync_client:
            runs.append(("sync_client", self.run_sync_client))
        for name, run in runs:
            if prime:
                run("prime", cache)
            rows[name] = run(phase, cache)
        return rows

    def phase_unchanged(self):
        log("== (b) unchanged pass (one untimed settle pass per tool first)")
        self.all_tools("settle", "warm")
        for cache in self.a.caches:
            # repeats alternate the tools; the report compares each tool's median run
            for rep in range(self.a.unchanged_reps):
                self.all_tools("unchanged", cache, prime=cache == "warm" and rep == 0)
        self.serve_hwm_checkpoint("unchanged")

    def settle_cyrsync(self):
        """An untimed pass, more than a second after the last change: cyrsync re-copies files
        it copied less than a second after they changed ("unsettled") on the next pass."""
        time.sleep(1.2)
        res = run_measured(lab.sync_cmd(self.master, self.daemon, "-A"), timeout=self.a.timeout,
                           watch_pids=self._serve_pids())
        self.record("settle", "cyrsync", "warm", res)

    def phase_new_mail(self):
        log("== (c) pass after 1 % new mail")
        for batch, cache in enumerate(self.a.caches, 1):
            if not self.a.skip_sync_client:
                self.rsc.stop()      # it is not needed while the master gets mail
            self.new_mail(batch, 0.01)
            if not self.a.skip_sync_client:
                with env_var("LD_PRELOAD", None):
                    self.rsc.start()
            self.all_tools("newmail", cache)
            self.settle_cyrsync()
        self.serve_hwm_checkpoint("new mail")

    def phase_full(self):
        log("== (d) cyrsync sync -A --full vs a bare readdir + d_type walk")
        self.settle_cyrsync()
        for cache in self.a.caches:
            if cache == "warm":  # primed like the unchanged pass (see all_tools)
                self.run_cyrsync("prime", cache, "--full")
            self.run_cyrsync("full", cache, "--full")
            if cache == "warm":
                self.run_walk("prime", cache, self.master.spool)
            self.run_walk("full", cache, self.master.spool)
            self.run_walk("full", cache, self.master.spool, self.rcs.spool,
                          name="walk master+replica")
        self.serve_hwm_checkpoint("--full")

    # ---- report -----------------------------------------------------------------------------
    def find(self, phase, tool, cache):
        """The run, or of repeated runs the one with the lower median wall time."""
        rows = [r for r in self.results["runs"]
                if r["phase"] == phase and r["tool"] == tool and r["cache"] == cache]
        if not rows:
            return None
        rows.sort(key=lambda r: (r.get("wall") is None, r.get("wall") or 0))
        return rows[(len(rows) - 1) // 2]

    def ratios(self):
        out = []

        def usable(row):
            # A seed whose folders were all copied but whose pass then failed on the idle
            # primary connection (server files step, see README) still measured the copy.
            if not row:
                return False
            if row.get("rc") == 0:
                return True
            return row["phase"] == "seed" and "Broken pipe" in row.get("error", "")

        def add(what, a_row, b_row, kind, target=None, note=""):
            if not usable(a_row) or not usable(b_row):
                out.append({"what": what, "ratio": None, "target": target, "ok": None,
                            "text": f"{what}: not measured" + (f" ({note})" if note else "")})
                return
            a, b = a_row["wall"], b_row["wall"]
            if kind == "faster":       # b / a, higher is better
                ratio = b / a
                text = (f"{what}: {a_row['tool']} {fmt_s(a)} s, {b_row['tool']} {fmt_s(b)} s -> "
                        f"{ratio:.1f}x faster")
                ok = None if target is None else ratio >= target
                tgt = None if target is None else f">= {target:g}x"
            elif kind == "files_per_s":
                fa, fb = a_row["files_per_s"], b_row["files_per_s"]
                ratio = fa / fb
                text = (f"{what}: {a_row['tool']} {fa:.0f} files/s ({fmt_s(a)} s), {b_row['tool']} "
                        f"{fb:.0f} files/s ({fmt_s(b)} s) -> {ratio:.2f}x")
                ok = None if target is None else ratio >= target
                tgt = None if target is None else f">= {target:g}x"
            else:                       # "slower": a / b, lower is better
                ratio = a / b
                text = (f"{what}: {a_row['tool']} {fmt_s(a)} s, {b_row['tool']} {fmt_s(b)} s -> "
                        f"{ratio:.2f}x the walk")
                ok = None if target is None else ratio <= target
                tgt = None if target is None else f"<= {target:g}x"
            if a_row.get("rc") != 0:
                text += f" [{a_row['tool']} pass exited {a_row['rc']}: server-file step failed]"
            out.append({"what": what, "ratio": ratio, "target": tgt, "ok": ok, "text": text})

        for cache in ("warm", "cold"):
            if cache not in self.a.caches:
                continue
            tgt = TARGETS[f"unchanged_vs_rsync_{cache}"]
            add(f"unchanged pass ({cache})", self.find("unchanged", "cyrsync", cache),
                self.find("unchanged", "rsync -a", cache), "faster", tgt)
            add(f"unchanged pass ({cache}) vs sync_client",
                self.find("unchanged", "cyrsync", cache),
                self.find("unchanged", "sync_client -A", cache), "faster",
                note=self.results["not_measured"].get("sync_client", ""))
        for cache in self.a.caches:
            add(f"--full vs bare walk ({cache})", self.find("full", "cyrsync --full", cache),
                self.find("full", "walk (readdir+d_type)", cache), "slower", TARGETS["full_vs_walk"])
            add(f"--full vs walk of both trees ({cache})",
                self.find("full", "cyrsync --full", cache),
                self.find("full", "walk master+replica", cache), "slower")
        for cache in self.a.caches:
            for tool in ("cyrsync", "cyrsync -w1"):
                add(f"initial seed ({cache}, {tool})", self.find("seed", tool, cache),
                    self.find("seed", "rsync -a", cache), "files_per_s",
                    TARGETS["seed_files_per_s_vs_rsync"])
            floor_note = self.results["not_measured"].get("copy floor", "")
            add(f"initial seed ({cache}, cyrsync) vs the bare copy",
                self.find("seed", "cyrsync", cache), self.find("seed", "copy floor", cache),
                "files_per_s", note=floor_note)
            add(f"initial seed ({cache}): the bare copy vs rsync (most any copier reaches here)",
                self.find("seed", "copy floor", cache), self.find("seed", "rsync -a", cache),
                "files_per_s", note=floor_note)
            add(f"initial seed ({cache}) vs sync_client", self.find("seed", "cyrsync", cache),
                self.find("seed", "sync_client -A", cache), "files_per_s",
                note=self.results["not_measured"].get("sync_client", ""))
        for cache in self.a.caches:
            add(f"1% new mail ({cache}) vs rsync", self.find("newmail", "cyrsync", cache),
                self.find("newmail", "rsync -a", cache), "faster")
            add(f"1% new mail ({cache}) vs sync_client", self.find("newmail", "cyrsync", cache),
                self.find("newmail", "sync_client -A", cache), "faster",
                note=self.results["not_measured"].get("sync_client", ""))
        sync_rss = [r["maxrss_kb"] for r in self.results["runs"]
                    if r["tool"].startswith("cyrsync") and r["rc"] == 0]
        if sync_rss:
            mb = max(sync_rss) / 1024
            out.append({"what": "peak RSS cyrsync sync", "ratio": mb,
                        "target": f"<= {TARGETS['peak_rss_mb']:g} MB",
                        "ok": mb <= TARGETS["peak_rss_mb"],
                        "text": f"peak RSS cyrsync sync (max over {len(sync_rss)} runs): {mb:.1f} MB"})
        hwm = [v for v in self.results["serve_vmhwm_kb"].values() if v]
        if hwm:
            mb = max(hwm) / 1024
            out.append({"what": "peak RSS cyrsync serve", "ratio": mb,
                        "target": f"<= {TARGETS['peak_rss_mb']:g} MB",
                        "ok": mb <= TARGETS["peak_rss_mb"],
                        "text": f"peak RSS cyrsync serve (VmHWM, max over daemon lifetimes): "
                                f"{mb:.1f} MB"})
        self.results["ratios"] = out
        return out

    def print_report(self):
        sp = self.results["spool"]
        p = self.results["params"]
        print()
        print("=" * 100)
        print(f"cyrsync {p.get('git_head')} (binary sha256 {str(p.get('binary_sha256'))[:12]}, "
              f"uncommitted: {len(p.get('git_dirty_files') or [])} files); {p.get('cpus')} CPUs")
        print(f"cyrsync benchmark: {sp.get('generated_messages')} generated + "
              f"{sp.get('seed_messages')} seed messages in {sp.get('folders')} folders "
              f"({sp.get('users')} users), {sp.get('master_files')} files, "
              f"spool {sp.get('spool_bytes', 0) / 1e6:.0f} MB; scale {p.get('scale')}")
        print(f"spool method: {sp.get('method')}")
        for v in sp.get("validation", []):
            print(f"validation ({v['when']}): reconstruct -n -G on {v['folders_checked']} folders: "
                  f"{v['n_findings']} findings")
        print("-" * 100)
        print("cpu s = CPU time of the tool (+ of cyrsync serve) / of the whole machine during "
              "the run (2 cores = 2 s per wall second); load = 1-min loadavg before the run")
        print(f"{'phase':10} {'tool':24} {'cache':5} {'wall s':>9} {'seconds=':>9} {'+sync s':>8} "
              f"{'files/s':>9} {'maxRSS MB':>9} {'rc':>3} {'cpu s tool+serve/machine':>24} "
              f"{'load':>5}  notes")
        for r in self.results["runs"]:
            st = r.get("stats") or {}
            notes = []
            if st:
                notes.append(f"changed={st.get('changed')} uns={st.get('unsettled')} msgs={st.get('messages')} "
                             f"srvfiles={st.get('server_files')}")
            if r.get("walk"):
                notes.append(r["walk"])
            if (r.get("cpu") or {}).get("busy_cores_before", 0) >= QUIET["busy_cores"]:
                notes.append(f"BUSY(other load {r['cpu']['busy_cores_before']:.1f} cores before)")
            fps = r.get("files_per_s")
            c = r.get("cpu") or {}
            ctext = f"{c.get('tool') or 0:.2f}"
            if c.get("serve") is not None:
                ctext += f"+{c['serve']:.2f}"
            ctext += f"/{c.get('machine_busy', 0):.2f}"
            print(f"{r['phase']:10} {r['tool']:24} {r['cache']:5} {r['wall']:9.3f} "
                  f"{fmt_s(r.get('seconds')):>9} {fmt_s(r.get('sync_after_s')):>8} "
                  f"{(f'{fps:.0f}' if fps else '-'):>9} {r['maxrss_kb'] / 1024:9.1f} "
                  f"{r['rc']:>3} {ctext:>24} {c.get('loadavg1_before', 0):5.2f}  {' '.join(notes)}")
        if self.results["serve_vmhwm_kb"]:
            print("cyrsync serve VmHWM: " + ", ".join(
                f"{k}: {(v or 0) / 1024:.1f} MB" for k, v in self.results["serve_vmhwm_kb"].items()))
        for k, v in self.results["not_measured"].items():
            print(f"NOT MEASURED {k}: {v}")
        for e in self.results.get("errors", []):
            print(f"PHASE FAILED {e['phase']}: {e['traceback'].strip().splitlines()[-1]}")
        print("-" * 100)
        print(f"{'ratio':88} {'target':>9} {'met':>5}")
        for r in self.results["ratios"]:
            ok = "-" if r["ok"] is None else ("yes" if r["ok"] else "NO")
            print(f"{r['text']:88} {r['target'] or '':>9} {ok:>5}")
        print("=" * 100, flush=True)

    # ---- main -------------------------------------------------------------------------------
    def run(self):
        a = self.a
        os.makedirs(self.work, exist_ok=True)
        if os.listdir(self.work) and not a.force:
            sys.exit(f"{self.work} is not empty (use --force to wipe it)")
        for d in os.listdir(self.work):
            shutil.rmtree(os.path.join(self.work, d), ignore_errors=True)
        # a private copy: a rebuild of build/cyrsync during the run must not change what we test
        os.makedirs(self.tools, exist_ok=True)
        lab.BIN = os.path.join(self.tools, "cyrsync")
        shutil.copy2(a.binary, lab.BIN)
        with open(lab.BIN, "rb") as f:
            bin_sha = hashlib.sha256(f.read()).hexdigest()
        git = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        QUIET["max_wait"] = a.quiet_wait
        self.results["params"] = {
            "messages": a.n_messages, "folders": a.n_folders, "scale": a.scale,
            "templates": a.templates, "seed": a.seed, "caches": a.caches,
            "seed_caches": a.seed_caches, "binary": a.binary,
            "cpus": os.cpu_count(), "kernel": os.uname().release, "workdir": self.work,
            "binary_sha256": bin_sha, "binary_mtime": time.ctime(os.path.getmtime(a.binary)),
            "git_head": git, "git_dirty_files": dirty.splitlines(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        t_all = time.monotonic()
        try:
            self.build_tools()
            log(f"building spool: {a.n_messages} messages in {a.n_folders} folders")
            self.build_spool()
            self.count_master()
            self.pki = lab.Pki(self.work)
            for phase in (self.phase_seed, self.phase_unchanged, self.phase_new_mail,
                          self.phase_full):
                try:
                    phase()
                except Exception:   # noqa: BLE001 - record it, report what was measured so far
                    import traceback
                    tb = traceback.format_exc()
                    self.results.setdefault("errors", []).append(
                        {"phase": phase.__name__, "traceback": tb})
                    log(f"{phase.__name__} FAILED:\n{tb}")
                    if phase == self.phase_seed:
                        break
            self.stop_daemon("end")
        finally:
            with contextlib.suppress(Exception):
                self.stop_daemon()
            with contextlib.suppress(Exception):
                self.master.stop()
            with contextlib.suppress(Exception):
                if self.rsc:
                    self.rsc.stop()
            self.results["total_seconds"] = time.monotonic() - t_all
            self.ratios()
            self.print_report()
            if a.json:
                with open(a.json, "w") as f:
                    json.dump(self.results, f, indent=1, default=str)
                log(f"wrote {a.json}")
            if self.rsc:
                with contextlib.suppress(Exception):
                    self.rsc.stop()
            if not a.keep:
                log(f"removing {self.work}")
                shutil.rmtree(self.work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--folders", type=int, default=10_000)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies --messages and --folders")
    ap.add_argument("--workdir", default="/tmp/csbench", help="keep it short: unix socket paths")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "cyrsync"))
    ap.add_argument("--copy-floor", help="bench/copy_floor.cc's binary (default: beside --binary)")
    ap.add_argument("--json", help="write all results as JSON here")
    ap.add_argument("--templates", type=int, default=200, help="real seed messages via LMTP")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--caches", default="cold,warm", help="cold,warm | cold | warm")
    ap.add_argument("--seed-caches", help="cache states for the seeds (default: --caches)")
    ap.add_argument("--validate-sample", type=int, default=40, help="folders for reconstruct -n -G")
    ap.add_argument("--ignore-validation", action="store_true")
    ap.add_argument("--skip-sync-client", action="store_true")
    ap.add_argument("--skip-workers1", action="store_true")
    ap.add_argument("--unchanged-reps", type=int, default=3,
                    help="unchanged passes per tool and cache state (medians are compared)")
    ap.add_argument("--timeout", type=int, default=3600, help="per tool run, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--quiet-wait", type=float, default=30.0,
                    help="before each run wait up to this long for an idle machine")
    ap.add_argument("--force", action="store_true", help="wipe a non-empty --workdir")
    args = ap.parse_args()
    args.n_messages = max(1, int(round(args.messages * args.scale)))
    args.n_folders = max(1, int(round(args.folders * args.scale)))
    args.copy_floor = args.copy_floor or os.path.join(os.path.dirname(args.binary),
                                                      "cyrsync_copy_floor")
    args.caches = [c for c in args.caches.split(",") if c]
    args.seed_caches = [c for c in (args.seed_caches or ",".join(args.caches)).split(",") if c]
    cl.require_environment()
    for tool in ("rsync", "cc"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} missing: cmake --build build -j2 --target cyrsync")
    if not os.path.exists(os.path.join(CYRUS_BIN, "sync_client")) and not args.skip_sync_client:
        sys.exit("sync_client missing (apt-get install cyrus-replication) or --skip-sync-client")
    def stop(signum, frame):
        raise SystemExit(128 + signum)      # unwinds through the cleanup in Bench.run
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    Bench(args).run()


if __name__ == "__main__":
    main()
