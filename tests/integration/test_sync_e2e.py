#!/usr/bin/env python3
"""End to end against real Cyrus 3.6.1, both spool layouts: populate a master, sync it into a
stopped replica tree through `cyrsync serve`, start Cyrus on the replica and compare everything
observable over IMAP/ManageSieve; reconstruct must find nothing. Then mutate the master (new
mail, flags, expunge, rename, delete, new user, user delete, sieve, quota), sync and compare
again; an unchanged pass must copy nothing; the daemon must refuse to write under a running
replica Cyrus; a wiped replica must be detected and rebuilt."""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyruslab as cl  # noqa: E402
import cyrsync_lab as lab  # noqa: E402

check = lab.Checks()



def compare_step(tag, master, replica):
    diffs, findings, _, _ = lab.compare(master, replica)
    check(f"{tag}: replica serves the same mail", diffs == [], diffs)
    check(f"{tag}: reconstruct/chk_cyrus on the replica find nothing", findings == [], findings)


def remove_some_messages(inst, n):
    victims = []
    for root, dirs, files in sorted(os.walk(inst.spool)):
        for f in sorted(files):
            if f[:-1].isdigit() and f.endswith(".") and len(victims) < n:
                victims.append(os.path.join(root, f))
    for v in victims:
        os.unlink(v)
    return victims


def rewrite_one_index(inst):
    """Writes one replica folder's cyrus.index back in place with its own bytes and mtime, as a
    restore from a backup would: only its ctime (and the inotify event) tell."""
    for root, dirs, files in sorted(os.walk(inst.spool)):
        if "cyrus.index" in files:
            path = os.path.join(root, "cyrus.index")
            st = os.stat(path)
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "r+b") as f:
                f.write(data)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
            return path
    raise RuntimeError("no folder found")


def make_stray_folder(inst):
    """A directory holding a cyrus.header that no mailboxes.db entry points to."""
    for root, dirs, files in os.walk(inst.spool):
        if "cyrus.header" in files:
            stray = os.path.join(inst.spool, "stray-folder")
            os.makedirs(stray, exist_ok=True)
            shutil.copy(os.path.join(root, "cyrus.header"), stray)
            return stray
    raise RuntimeError("no folder found")


def scenario(base, legacy):
    tag = "legacy" if legacy else "uuid"
    master = cl.CyrusInstance(os.path.join(base, "m"), f"m{tag}", legacy_dirs=legacy)
    replica = cl.CyrusInstance(os.path.join(base, "r"), f"r{tag}", legacy_dirs=legacy)
    master.setup()
    replica.setup()
    pki = lab.Pki(base)
    daemon = lab.Daemon(replica, pki)
    master.start()
    try:
        cl.populate(master, seed=1, messages=200)
        daemon.start()
        rc, out, st = lab.run_sync(master, daemon, "-A")
        check(f"{tag}: first pass copies every folder", st.get("changed", 0) > 10 and
              st.get("failed") == 0, out[-1500:])
        compare_step(f"{tag} initial", master, replica)

        rc, out, st = lab.run_sync(master, daemon, "-A")
        # Starting Cyrus on the replica rewrote some of its databases: those are detected and
        # copied again, folders stay untouched unless Cyrus touched them.
        rc, out, st = lab.run_sync(master, daemon, "-A")
        # (Server files are not asserted: Cyrus's periodic checkpoint may rewrite a database.)
        check(f"{tag}: unchanged pass copies no folder", st.get("changed") == 0 and
              st.get("messages") == 0 and st.get("failed") == 0, out[-1500:])

        # A file changed behind the running daemon's back (it watches the directories it checked
        # instead of statting every file each pass): the folder is copied again.
        rewritten = rewrite_one_index(replica)
        rc, out, st = lab.run_sync(master, daemon, "-A")
        check(f"{tag}: a replica index rewritten behind the daemon's back is copied again",
              st.get("changed") == 1 and st.get("failed") == 0, (rewritten, out[-1500:]))

        cl.mutate(master, seed=2)
        rc, out, st = lab.run_sync(master, daemon, "-A")
        check(f"{tag}: pass after changes copies them", st.get("changed", 0) > 0 and
              st.get("failed") == 0, out[-1500:])
        compare_step(f"{tag} after changes", master, replica)

        # Purge the delayed-delete DELETED.* folders and expunged messages on the master: the
        # replica must drop them too.
        master.tool("cyr_expire", "-X", "0", "-D", "0", check=True)
        rc, out, st = lab.run_sync(master, daemon, "-A")
        check(f"{tag}: purged folders are removed from the replica", st.get("deleted", 0) > 0 and
              st.get("failed") == 0, out[-1500:])
        compare_step(f"{tag} after purge", master, replica)

        # A replica that lost message files: a normal pass trusts the installed indexes, --full
        # lists the replica's directories and repairs; it also reports a folder directory on the
        # master that mailboxes.db does not list.
        lost = remove_some_messages(replica, 5)
        stray = make_stray_folder(master)
        rc, out, st = lab.run_sync(master, daemon, "-A", "--full")
        check(f"{tag}: --full restores the {len(lost)} message files the replica lost",
              st.get("messages") == len(lost) and all(os.path.exists(p) for p in lost), out[-1500:])
        check(f"{tag}: --full reports the folder mailboxes.db does not list",
              st.get("unlisted") == 1 and stray in out, out[-1500:])
        shutil.rmtree(stray)
        compare_step(f"{tag} after --full repair", master, replica)

        replica.start()
        try:
            rc, out, st = lab.run_sync(master, daemon, "-A", check=False)
            check(f"{tag}: daemon refuses to write under a running replica Cyrus",
                  rc != 0 and "running" in out, out[-800:])
        finally:
            replica.stop()

        daemon.stop()
        shutil.rmtree(replica.spool)
        os.makedirs(replica.spool)
        shutil.chown(replica.spool, "cyrus", "mail")
        daemon.start()
        rc, out, st = lab.run_sync(master, daemon, "-A")
        check(f"{tag}: a wiped replica spool is detected and rebuilt",
              st.get("changed", 0) >= st.get("folders", 1) and st.get("messages", 0) > 0, out[-1500:])
        compare_step(f"{tag} after replica wipe", master, replica)
    finally:
        daemon.stop()
        master.stop()
        replica.stop()


def main():
    cl.require_environment()
    for legacy in (False, True):
        check.run(f"scenario legacy={legacy} ran", "cse2e", scenario, legacy)
    check.finish("sync e2e")


if __name__ == "__main__":
    main()
