#!/usr/bin/env python3
"""`cyrsync sync --every`: one long-running syncer keeps a replica current, against real Cyrus
3.6.1.

* A master is populated; `cyrsync sync -A --every 1` runs in the background.
* While it runs, a new folder is created on the master and mail is appended to it. The syncer
  keeps the parsed mailboxes.db between passes (re-read only when the file changed), so this
  checks that a folder created between passes is picked up by a later pass of the same process.
* The syncer is stopped (SIGTERM); the replica's Cyrus then serves what the master serves.

Exit 0 = pass, 77 = skip (no root / no Cyrus), 1 = fail. CYRUSLAB_KEEP=1 keeps the temp dir.
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyruslab as cl  # noqa: E402
import cyrsync_lab as lab  # noqa: E402

check = lab.Checks()


def passes(log_path):
    """The stats of every finished pass in the syncer's log, in order."""
    with open(log_path, errors="replace") as f:
        return [lab.parse_stats(line) for line in f if "sync pass done" in line]


def wait_for(pred, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def scenario(base):
    master = cl.CyrusInstance(os.path.join(base, "m"), "mevery")
    replica = cl.CyrusInstance(os.path.join(base, "r"), "revery")
    master.setup()
    replica.setup()
    pki = lab.Pki(base)
    daemon = lab.Daemon(replica, pki)
    master.start()
    syncer = None
    try:
        cl.populate(master, seed=4, messages=60)
        daemon.start()
        log_path = os.path.join(base, "syncer.log")
        with open(log_path, "wb") as log:
            syncer = subprocess.Popen(lab.sync_cmd(master, daemon, "-A", "--every", "1"),
                                      stdout=log, stderr=subprocess.STDOUT)
        check("the first pass of --every copies every folder",
              wait_for(lambda: any(p.get("changed", 0) > 5 for p in passes(log_path))),
              open(log_path, errors="replace").read()[-1500:])
        seen = len(passes(log_path))

        c = master.imap("alice")
        try:
            cl._check(c.create(cl.q("INBOX.Later")), "CREATE INBOX.Later")
            msg = b"From: x@example.org\r\nTo: alice\r\nSubject: later\r\n\r\nlater body\r\n"
            cl._check(c.append(cl.q("INBOX.Later"), None, None, msg), "APPEND")
        finally:
            c.logout()
        check("a later pass of the same process copies the new folder and its message",
              wait_for(lambda: any(p.get("changed", 0) >= 1 and p.get("messages", 0) >= 1
                                   for p in passes(log_path)[seen:])),
              open(log_path, errors="replace").read()[-1500:])
        syncer.send_signal(signal.SIGTERM)
        syncer.wait(timeout=30)
        syncer = None
        check("the daemon is idle after the syncer stopped", daemon.wait_idle())
        diffs, findings, _, _ = lab.compare(master, replica)
        check("the replica's Cyrus serves what the master serves", not diffs, diffs)
        check("reconstruct finds nothing on the replica", not findings, findings)
    finally:
        if syncer is not None:
            syncer.kill()
            syncer.wait()
        daemon.stop()
        master.stop()
        replica.stop()


def main():
    cl.require_environment()
    t = time.monotonic()
    check.run("scenario ran", "csev", scenario)
    print(f"       took {time.monotonic() - t:.0f}s", flush=True)
    check.finish("every")


if __name__ == "__main__":
    main()
