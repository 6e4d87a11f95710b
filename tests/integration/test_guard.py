#!/usr/bin/env python3
"""The disk-loss guard and the reverse resync, against real Cyrus 3.6.1.

* A master is populated and synced to a replica (compared equal).
* One folder's directory is lost on the master (below the guard's 5 % threshold): the pass
  goes on, reports the folder missing, and the replica keeps its copy of it untouched.
* The master loses its disk: the partition's contents are wiped (then the partition directory
  itself, then also mailboxes.db). `cyrsync sync` must refuse with exit code 3 and say so
  ("refusing"), for -A and for a single user (-u); the replica's tree must stay exactly as it
  was (same paths, sizes, mtimes, inodes) and keep serving the original mail.
* Reverse resync: `cyrsync serve` on the master's tree (its Cyrus stopped) and `cyrsync sync`
  with the replica's imapd.conf as the source. Afterwards the master serves what it served
  before the loss (including the folder lost first), equal to the replica, and
  reconstruct/chk_cyrus find nothing on it.
* --force overrides the guard (on a throw-away third instance as the replica): a source whose
  partition is empty, and a source that lists no folders at all, are refused without --force
  (exit 3) and accepted with it (exit 0); the latter empties the throw-away replica.

Exit 0 = pass, 77 = skip (no root / no Cyrus), 1 = fail. CYRUSLAB_KEEP=1 keeps the temp dir.
"""

import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyruslab as cl  # noqa: E402
import cyrsync_lab as lab  # noqa: E402

check = lab.Checks()



def replica_tree(inst):
    """Everything of the replica's Cyrus data (the daemon's own state dir aside)."""
    return lab.tree_snapshot(inst.confdir, inst.spool, inst.sievedir,
                             skip=(os.path.join(inst.confdir, "cyrsync"),))


def snapshot_diff(a, b):
    out = []
    for p in sorted(set(a) | set(b)):
        if p not in b:
            out.append(f"removed: {p}")
        elif p not in a:
            out.append(f"created: {p}")
        elif a[p] != b[p]:
            out.append(f"changed: {p} {a[p]} -> {b[p]}")
    return out


def mbpath(inst, mailbox):
    r = inst.tool("mbpath", mailbox)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"mbpath {mailbox}: {r.stdout}{r.stderr}")
    return r.stdout.strip().splitlines()[0]


def message_files(root):
    n = 0
    for _, _, files in os.walk(root):
        n += sum(1 for f in files if re.fullmatch(r"\d+\.", f))
    return n


def expect_refusal(tag, src, daemon, replica, before, *extra, why=None):
    rc, out, _ = lab.run_sync(src, daemon, *extra, check=False)
    tail = out[-1500:].splitlines()
    check(f"{tag}: sync {' '.join(extra)} exits 3 (guard refused)", rc == 3, [f"rc={rc}"] + tail)
    check(f"{tag}: the output says it refuses", "refusing" in out, tail)
    if why:
        check(f"{tag}: the output names the reason ({why})", why in out, tail)
    diff = snapshot_diff(before, replica_tree(replica))
    check(f"{tag}: the replica's files are untouched", diff == [], diff)


def clear_dir(path):
    for name in os.listdir(path):
        p = os.path.join(path, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def scenario(base):
    master = cl.CyrusInstance(os.path.join(base, "m"), "gdm")
    replica = cl.CyrusInstance(os.path.join(base, "r"), "gdr")
    scratch = cl.CyrusInstance(os.path.join(base, "x"), "gdx")      # throw-away replica
    wiped = cl.CyrusInstance(os.path.join(base, "w"), "gdw")        # source: empty partition
    empty = cl.CyrusInstance(os.path.join(base, "e"), "gde")        # source: no folders at all
    insts = (master, replica, scratch, wiped, empty)
    for inst in insts:
        inst.setup()
    pki = lab.Pki(base)
    d_replica = lab.Daemon(replica, pki)
    d_master = lab.Daemon(master, pki)
    d_scratch = lab.Daemon(scratch, pki)
    daemons = (d_replica, d_master, d_scratch)
    try:
        master.start()
        cl.populate(master, seed=1, messages=200)
        d_replica.start()
        lab.run_sync(master, d_replica, "-A")
        diffs, findings, master_state, _ = lab.compare(master, replica)
        check("initial sync: replica serves the same mail", diffs == [], diffs)
        check("initial sync: reconstruct/chk_cyrus on the replica find nothing", findings == [],
              findings)
        # settle: starting Cyrus on the replica rewrote some of its files, the next pass
        # copies them again; from here on the replica's tree must not change any more.
        lab.run_sync(master, d_replica, "-A")
        master.stop()

        # ---- one folder lost on the master: below the guard's threshold --------------------
        box = "user.alice.Drafts"
        m_dir = mbpath(master, box)
        r_dir = mbpath(replica, box)
        held = lab.tree_snapshot(r_dir)
        shutil.rmtree(m_dir)
        rc, out, st = lab.run_sync(master, d_replica, "-A", check=False)
        tail = out[-1500:].splitlines()
        check("one folder lost on the master: the pass is not refused", rc in (0, 2), [f"rc={rc}"]
              + tail)
        check("one folder lost on the master: the pass reports it missing",
              st.get("missing") == 1 and st.get("deleted") == 0, tail)
        diff = snapshot_diff(held, lab.tree_snapshot(r_dir))
        check("one folder lost on the master: the replica keeps its copy of that folder",
              diff == [] and message_files(r_dir) > 0, diff or message_files(r_dir))

        before = replica_tree(replica)
        check("the replica's tree holds message files", message_files(replica.spool) > 100,
              message_files(replica.spool))

        # ---- the master loses its disk -----------------------------------------------------
        clear_dir(master.spool)
        expect_refusal("wiped master partition", master, d_replica, replica, before, "-A",
                       why="no cyrus.index")
        expect_refusal("wiped master partition, one user", master, d_replica, replica, before,
                       "-u", "alice")
        os.rmdir(master.spool)
        expect_refusal("master partition directory missing", master, d_replica, replica, before,
                       "-A", why="is missing")
        db = os.path.join(master.confdir, "mailboxes.db")
        os.rename(db, db + ".away")
        try:
            expect_refusal("master partition and mailboxes.db missing", master, d_replica,
                           replica, before, "-A")
        finally:
            os.rename(db + ".away", db)
        replica.start()
        try:
            diffs = cl.diff_states(master_state, cl.capture_state(replica))
        finally:
            replica.stop()
        check("after the refusals the replica still serves the original mail", diffs == [], diffs)

        # ---- reverse resync: the replica's data goes back to the master ----------------------
        d_replica.stop()
        master.setup()   # recreates the (empty) partition directory, keeps everything else
        d_master.start()
        rc, out, st = lab.run_sync(replica, d_master, "-A", check=False)
        check("reverse resync: sync from the replica into the master exits 0", rc == 0,
              out[-1500:].splitlines())
        check("reverse resync: it copies the messages back", st.get("messages", 0) > 100 and
              st.get("failed") == 0, out[-800:].splitlines())
        d_master.stop()
        rc, out = lab.recover(master)
        check("reverse resync: cyrsync recover on the master exits 0", rc == 0, out.splitlines())
        master.start()
        diffs, _, restored_state, _ = lab.compare(master, replica)
        check("reverse resync: master and replica serve the same mail", diffs == [], diffs)
        diffs = cl.diff_states(master_state, restored_state)
        check("reverse resync: the master serves what it served before the loss", diffs == [],
              diffs)
        findings = cl.reconstruct_findings(master)
        check("reverse resync: reconstruct/chk_cyrus on the master find nothing", findings == [],
              findings)

        # ---- --force, on a throw-away replica ------------------------------------------------
        d_scratch.start()
        rc, out, st = lab.run_sync(master, d_scratch, "-A", check=False)
        check("--force: the throw-away replica gets a copy first", rc == 0 and
              message_files(scratch.spool) > 100, out[-800:].splitlines())
        master.stop()
        # a source whose mailboxes.db lists every folder but whose partition is empty
        shutil.copy2(os.path.join(master.confdir, "mailboxes.db"),
                     os.path.join(wiped.confdir, "mailboxes.db"))
        held = replica_tree(scratch)
        expect_refusal("--force: empty partition, without --force", wiped, d_scratch, scratch,
                       held, "-A")
        rc, out, st = lab.run_sync(wiped, d_scratch, "-A", "--force", check=False)
        check("--force: a sync from the empty partition with --force exits 0", rc == 0,
              [f"rc={rc}"] + out[-1500:].splitlines())
        # a source that lists no folders at all (a fresh Cyrus)
        empty.start()
        empty.stop()
        held = replica_tree(scratch)
        expect_refusal("--force: source without folders, without --force", empty, d_scratch,
                       scratch, held, "-A", why="no folders")
        rc, out, st = lab.run_sync(empty, d_scratch, "-A", "--force", check=False)
        check("--force: a sync from a source without folders with --force exits 0", rc == 0,
              [f"rc={rc}"] + out[-1500:].splitlines())
        check("--force: ... and deletes the replica's folders", st.get("deleted", 0) > 10 and
              message_files(scratch.spool) == 0,
              [f"deleted={st.get('deleted')} message files left={message_files(scratch.spool)}"]
              + out[-800:].splitlines())
    finally:
        for d in daemons:
            d.stop()
        for inst in insts:
            inst.stop()


def main():
    cl.require_environment()
    t = time.monotonic()
    check.run("scenario ran", "csgd", scenario)
    print(f"       took {time.monotonic() - t:.0f}s", flush=True)
    check.finish("guard")


if __name__ == "__main__":
    main()
