"""Helpers that drive the cyrsync binary around real Cyrus instances (cyruslab.py): a private
CA, the replica daemon, and sync passes. Used by the demo and the integration tests."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import cyruslab as cl

BIN = os.environ.get("CYRSYNC_BIN", "cyrsync")


class Pki:
    """A throw-away CA with one certificate for the syncer side and one for the daemon."""

    def __init__(self, base: str):
        self.dir = os.path.join(base, "pki")
        os.makedirs(self.dir, exist_ok=True)
        subprocess.run([BIN, "ca", "init", self.dir], check=True, capture_output=True)
        for name in ("replica", "syncer"):
            subprocess.run([BIN, "ca", "issue", self.dir, name, "--host", "127.0.0.1",
                            "--host", "localhost"], check=True, capture_output=True)

    def args(self, name: str):
        return ["--ca", os.path.join(self.dir, "ca.crt"),
                "--cert", os.path.join(self.dir, name + ".crt"),
                "--key", os.path.join(self.dir, name + ".key")]


class Daemon:
    """`cyrsync serve` for one Cyrus instance's tree (the instance itself stays stopped)."""

    def __init__(self, inst: cl.CyrusInstance, pki: Pki, state_dir: str = None):
        self.inst = inst
        self.pki = pki
        self.port = cl._free_port()
        self.state_dir = state_dir
        self.proc = None
        self.log_path = os.path.join(inst.base, "log", "cyrsync-serve.log")

    def start(self):
        cmd = [BIN, "serve", "-C", self.inst.conf_path, "--listen", f"127.0.0.1:{self.port}",
               "--cyrus-pidfile", self.inst.pidfile()] + self.pki.args("replica")
        if self.state_dir:
            cmd += ["--state-dir", self.state_dir]
        cmd += getattr(self, "extra", [])
        self.log = open(self.log_path, "ab")
        start_at = len(self.log_text())
        self.log_start = start_at
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("cyrsync serve exited: " + self.log_text()[-2000:])
            if "replica listening" in self.log_text()[start_at:]:
                return
            time.sleep(0.05)
        raise RuntimeError("cyrsync serve did not come up: " + self.log_text()[-2000:])

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self):
        self.stop(signal.SIGKILL)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def accepted(self) -> int:
        """Connections this daemon process accepted so far (per its log since the last start())."""
        return len(_ACCEPTED.findall(self.log_text()[getattr(self, "log_start", 0):]))

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once every connection this daemon process accepted has been closed again (per its
        log since the last start()): no session is still writing into the tree."""
        deadline = time.time() + timeout
        while True:
            text = self.log_text()[getattr(self, "log_start", 0):]
            # Whole log events only: an error message quoted in a line ("... connection closed by
            # peer") is not a closed connection, and counting it let this return while a session
            # was still installing a folder.
            accepted = len(_ACCEPTED.findall(text))
            closed = len(_CLOSED.findall(text))
            if accepted <= closed:
                return True
            if time.time() > deadline:
                return False
            time.sleep(0.05)


# The daemon's own log lines for a connection (common/log.cc's pattern: time, level, logger).
_ACCEPTED = re.compile(r"^\S+ info \S+ connection accepted peer=", re.M)
_CLOSED = re.compile(r"^\S+ info \S+ connection closed peer=", re.M)


def snapshot_config(base, pki, users, replica_port=None, master_port=None, path=None, **extra):
    """Writes a `cyrsync snapshot` configuration with one store `s1` whose slots are the given
    daemons (a replica slot first, falling back to the master slot when there is one); `extra`
    overrides top-level keys. Returns its path (default <base>/snapshot.json)."""
    slots = []
    if replica_port:
        slots.append({"role": "replica", "host": "127.0.0.1", "port": replica_port, "drive": "r1"})
    if master_port:
        slots.append({"role": "master", "host": "127.0.0.1", "port": master_port, "drive": "m1"})
    conf = {
        "archive_dir": os.path.join(base, "archives"),
        "tls": {"ca": os.path.join(pki.dir, "ca.crt"), "cert": os.path.join(pki.dir, "syncer.crt"),
                "key": os.path.join(pki.dir, "syncer.key")},
        "default_from": "replica", "on_replica_unavailable": "master" if master_port else "fail",
        "max_replica_lag_seconds": 3600, "workers": 2, "retention_days": 30,
        "stores": {"s1": {"slots": slots}},
        "users": {u: "s1" for u in users},
    }
    conf.update(extra)
    path = path or os.path.join(base, "snapshot.json")
    with open(path, "w") as f:
        json.dump(conf, f)
    return path


def sync_cmd(src: cl.CyrusInstance, daemon: Daemon, *extra):
    return [BIN, "sync", "-C", src.conf_path, "--replica", f"127.0.0.1:{daemon.port}"] + \
        daemon.pki.args("syncer") + list(extra)


def run_sync(src: cl.CyrusInstance, daemon: Daemon, *extra, check=True):
    """Runs one pass; returns (returncode, output, stats dict parsed from the summary line)."""
    p = subprocess.run(sync_cmd(src, daemon, *extra), capture_output=True, text=True,
                       timeout=600)
    out = p.stdout + p.stderr
    if check and p.returncode != 0:
        raise RuntimeError(f"cyrsync sync failed rc={p.returncode}:\n{out[-4000:]}")
    return p.returncode, out, parse_stats(out)


def recover(inst: cl.CyrusInstance, state_dir: str = None):
    """`cyrsync recover` on a (stopped) instance's tree; returns (returncode, output)."""
    cmd = [BIN, "recover", "-C", inst.conf_path] + (["--state-dir", state_dir] if state_dir else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def tree_snapshot(*dirs, skip=()) -> dict:
    """{path: (kind, size, mtime_ns, ino, nlink)} of everything below `dirs` (symlinks not
    followed), leaving out paths that start with one of `skip`. Two equal snapshots mean
    nothing was created, removed, replaced or modified."""
    out = {}
    for top in dirs:
        for root, subdirs, files in os.walk(top):
            for name in subdirs + files:
                path = os.path.join(root, name)
                if any(path == s or path.startswith(s.rstrip("/") + "/") for s in skip):
                    continue
                st = os.lstat(path)
                kind = "d" if os.path.isdir(path) and not os.path.islink(path) else \
                    "l" if os.path.islink(path) else "f"
                out[path] = (kind, st.st_size if kind == "f" else 0, st.st_mtime_ns, st.st_ino,
                             st.st_nlink)
            subdirs[:] = [d for d in subdirs if not any(
                os.path.join(root, d).startswith(s.rstrip("/") + "/") or
                os.path.join(root, d) == s for s in skip)]
    return out


def parse_stats(out: str) -> dict:
    m = None
    for m in re.finditer(r"sync pass done (.*)", out):
        pass
    if not m:
        return {}
    stats = {}
    for k, v in re.findall(r"(\w+)=(\S+)", m.group(1)):
        try:
            stats[k] = float(v) if "." in v else int(v)
        except ValueError:
            stats[k] = v
    return stats


def compare(master: cl.CyrusInstance, replica: cl.CyrusInstance):
    """Starts the replica's Cyrus, captures both servers through IMAP/ManageSieve, stops the
    replica again and returns (differences, reconstruct findings on the replica)."""
    a = cl.capture_state(master)
    replica.start()
    try:
        b = cl.capture_state(replica)
    finally:
        replica.stop()
    return cl.diff_states(a, b), cl.reconstruct_findings(replica), a, b


class Checks:
    """The named checks of one test script: prints each as "ok"/"FAIL" (with up to 30 lines of
    detail) and counts them. Callable like a function; safe to call from several threads."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self._lock = threading.Lock()

    def __call__(self, name, ok, detail=None):
        with self._lock:
            if ok:
                self.passed += 1
                print(f"  ok   {name}", flush=True)
            else:
                self.failed += 1
                print(f"  FAIL {name}", flush=True)
                for line in (detail if isinstance(detail, list) else [str(detail)])[:30]:
                    print(f"         {line}", flush=True)
        return ok

    def run(self, what, prefix, scenario, *args):
        """Runs scenario(base, *args) in a fresh temp dir; an exception is a failed check named
        `what`. The dir is removed afterwards unless CYRUSLAB_KEEP=1."""
        base = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        try:
            scenario(base, *args)
        except Exception:  # noqa: BLE001
            self(what, False, traceback.format_exc().splitlines())
        finally:
            if os.environ.get("CYRUSLAB_KEEP") == "1":
                print(f"kept {base}", flush=True)
            else:
                shutil.rmtree(base, ignore_errors=True)

    def finish(self, label):
        """Prints the summary line and exits 0 when every check passed, else 1."""
        print(f"{label}: {self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(0 if self.failed == 0 else 1)
