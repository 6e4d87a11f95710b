#!/usr/bin/env python3
"""The cyrsync demo: master Cyrus -> cyrsync serve -> replica Cyrus, compared side by side.
Keeps nothing unless --keep is given."""

import argparse
import hashlib
import os
import subprocess
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyruslab as cl  # noqa: E402
import cyrsync_lab as lab  # noqa: E402


def summarize(state):
    """Per user and folder: message count, UIDVALIDITY, UIDNEXT, flags digest, bodies digest."""
    rows = {}
    for user, u in sorted(state["users"].items()):
        for name, f in sorted(u["folders"].items()):
            msgs = f.get("messages", {})
            bodies = hashlib.sha1("".join(
                str(m.get("sha1", m.get("body_sha1", ""))) for _, m in sorted(msgs.items())).encode())
            flags = hashlib.sha1(repr(sorted((k, m.get("flags")) for k, m in msgs.items())).encode())
            st = f.get("status", {})
            rows[(user, name)] = (len(msgs), st.get("UIDVALIDITY"), st.get("UIDNEXT"),
                                  flags.hexdigest()[:8], bodies.hexdigest()[:8])
    return rows


def print_side_by_side(a, b):
    ra, rb = summarize(a), summarize(b)
    print(f"{'user':6} {'folder':28} | {'master: msgs uidv uidnext flags bodies':44} | "
          f"{'replica: msgs uidv uidnext flags bodies':44} |")
    for key in sorted(set(ra) | set(rb)):
        fa = " ".join(str(x) for x in ra.get(key, ("-",)))
        fb = " ".join(str(x) for x in rb.get(key, ("-",)))
        mark = "" if ra.get(key) == rb.get(key) else "  <-- differs"
        print(f"{key[0]:6} {key[1][:28]:28} | {fa:44} | {fb:44} |{mark}")
    for user in sorted(a.get("sieve", {})):
        sa = a["sieve"][user].get("scripts")
        sb = b.get("sieve", {}).get(user, {}).get("scripts")
        print(f"sieve  {user:28} | {str(sa):44} | {str(sb):44} |")


def cyrsync(*args):
    p = subprocess.run([lab.BIN, *args], capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr


def snapshot_step(base, pki, daemon, users):
    """Backs every user up from the replica's daemon into per-user tar.gz archives, verifies
    them, and restores one user to a directory. True when all three succeed."""
    path = lab.snapshot_config(base, pki, users, daemon.port)
    archive_dir = os.path.join(base, "archives")
    print(f"== cyrsync snapshot -A from the replica slot into {archive_dir}")
    rc_snap, out = cyrsync("snapshot", "-c", path, "-A")
    for line in out.splitlines():
        if "snapshot user=" in line or "snapshot done" in line:
            print("   ", line.split(" info snapshot ", 1)[-1])
    archives = sorted(n for n in os.listdir(archive_dir) if n.endswith(".tar.gz"))
    print(f"   archives: {', '.join(archives)}")
    rc_verify, out = cyrsync("verify", "-c", path, "-A", "--json")
    print(f"== cyrsync verify -A: exit {rc_verify}")
    target = os.path.join(base, "restored")
    rc_restore, out = cyrsync("restore", "-c", path, "-u", users[0], "--to", target)
    files = sum(len([n for n in names if n[:1].isdigit() and n.endswith(".")])
                for _, _, names in os.walk(target))
    print(f"== cyrsync restore -u {users[0]} --to {target}: exit {rc_restore}, {files} message files")
    if rc_restore != 0:
        print("   ", out[-1500:])
    return rc_snap == 0 and rc_verify == 0 and rc_restore == 0 and files > 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--legacy-dirs", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    cl.require_environment()
    base = tempfile.mkdtemp(prefix="cyrsync-demo", dir="/tmp")
    master = cl.CyrusInstance(os.path.join(base, "master"), "demo-master", args.legacy_dirs)
    replica = cl.CyrusInstance(os.path.join(base, "replica"), "demo-replica", args.legacy_dirs)
    daemon = None
    try:
        master.setup()
        replica.setup()
        print(f"== starting master Cyrus in {master.base} and filling it ({args.messages} messages)")
        master.start()
        cl.populate(master, seed=1, messages=args.messages)
        pki = lab.Pki(base)
        daemon = lab.Daemon(replica, pki)
        daemon.start()
        print(f"== cyrsync serve on 127.0.0.1:{daemon.port} for {replica.base} (replica Cyrus stopped)")
        rc, out, st = lab.run_sync(master, daemon, "-A")
        print("== cyrsync sync -A:", {k: st[k] for k in ("folders", "changed", "messages", "bytes",
                                                         "server_files", "seconds") if k in st})
        rc, out, st = lab.run_sync(master, daemon, "-A")
        print("== second pass (unchanged):", {k: st[k] for k in ("changed", "messages", "seconds")})
        print("== starting Cyrus on the replica and comparing over IMAP + ManageSieve")
        diffs, findings, a, b = lab.compare(master, replica)
        print_side_by_side(a, b)
        print(f"== differences: {len(diffs)}; reconstruct findings on the replica: {len(findings)}")
        for line in (diffs + findings)[:20]:
            print("   ", line)
        snap_ok = snapshot_step(base, pki, daemon, sorted({k[0] for k in summarize(a)}))
        ok = not diffs and not findings and snap_ok
        print("== DEMO OK: the replica serves the same mail and its snapshots verify" if ok
              else "== DEMO FAILED")
        return 0 if ok else 1
    finally:
        if daemon:
            daemon.stop()
        master.stop()
        replica.stop()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
