#!/usr/bin/env python3
"""Self-check of the real-Cyrus harness (cyruslab.py), run by CTest as a script.

For both spool layouts (uuid and mailbox_legacy_dirs): set up, populate and mutate a master,
stop it, `cp -a` conf/spool/sieve into a second instance, start both, and check that
  * capture_state is stable (two captures of one server are equal, also across a restart),
  * master and copy are equal (diff_states == []),
  * reconstruct_findings on the copy is [],
  * the checkers can fail: one changed flag on the copy is reported by diff_states, one
    flipped byte in a message file on the copy is reported by reconstruct_findings.
Exit 0 = pass, 77 = skip (no root / no Cyrus), 1 = fail.  Set CYRUSLAB_KEEP=1 to keep the
temp dir for inspection.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyruslab as cl  # noqa: E402

passed = 0
failed = 0
_lock = threading.Lock()


def say(line: str) -> None:
    with _lock:
        print(line, flush=True)


def check(name: str, ok: bool, detail=None) -> bool:
    global passed, failed
    with _lock:
        if ok:
            passed += 1
            print(f"  ok   {name}", flush=True)
        else:
            failed += 1
            print(f"  FAIL {name}", flush=True)
            if detail:
                lines = detail if isinstance(detail, list) else [str(detail)]
                for line in lines[:25]:
                    print(f"         {line}")
                if len(lines) > 25:
                    print(f"         ... {len(lines) - 25} more")
                sys.stdout.flush()
    return ok


def copy_data(src: cl.CyrusInstance, dst: cl.CyrusInstance) -> None:
    """Lab §5: one `cp -a` per tree (keeps hard links, owners, modes, mtimes)."""
    for d in ("conf", "spool", "sieve"):
        shutil.rmtree(os.path.join(dst.base, d), ignore_errors=True)
        subprocess.run(["cp", "-a", os.path.join(src.base, d), dst.base + "/"], check=True)
    sockdir = os.path.join(dst.base, "conf", "socket")
    for f in os.listdir(sockdir):
        os.unlink(os.path.join(sockdir, f))


def flip_flag(inst: cl.CyrusInstance) -> str:
    c = inst.imap("alice")
    try:
        cl._check(c.select("INBOX"), "SELECT")
        uid = cl._uids(c)[0]
        cl._check(c.uid("STORE", str(uid), "+FLAGS", r"(\Flagged $SelfCheck)"), "STORE")
        c.close()
    finally:
        c.logout()
    return str(uid)


def corrupt_one_message(inst: cl.CyrusInstance) -> str:
    """Flip one byte (same size) in a message file of the copy; returns its path."""
    for root, dirs, files in sorted(os.walk(inst.spool)):
        dirs.sort()
        for f in sorted(files):
            if f[:-1].isdigit() and f.endswith("."):
                p = os.path.join(root, f)
                if os.path.getsize(p) > 200:
                    with open(p, "r+b") as fh:
                        fh.seek(150)
                        b = fh.read(1)
                        fh.seek(150)
                        fh.write(bytes([b[0] ^ 0x01]))
                    return p
    raise RuntimeError("no message file found")


def scenario(tmp: str, legacy: bool) -> None:
    tag = "legacy" if legacy else "uuid"
    say(f"[{tag}] layout mailbox_legacy_dirs={'yes' if legacy else 'no'}")
    t0 = time.monotonic()
    master = cl.CyrusInstance(os.path.join(tmp, tag[0] + "m"), f"selfcheck-{tag}-m",
                              legacy_dirs=legacy)
    replica = cl.CyrusInstance(os.path.join(tmp, tag[0] + "r"), f"selfcheck-{tag}-r",
                               legacy_dirs=legacy)
    try:
        master.setup()
        replica.setup()
        master.setup()   # idempotent
        check(f"[{tag}] setup idempotent, ports distinct",
              len({master.imap_port, master.sieve_port, replica.imap_port,
                   replica.sieve_port}) == 4)
        master.start()
        check(f"[{tag}] master running", master.is_running())
        summary = cl.populate(master, seed=1, messages=300)
        msum = cl.mutate(master, seed=2)
        check(f"[{tag}] populate/mutate ran",
              summary["lmtp"]["multi_rcpt"] > 0 and msum["deleted_user"] == "carol")

        s1 = cl.capture_state(master)
        s2 = cl.capture_state(master)
        d = cl.diff_states(s1, s2)
        check(f"[{tag}] capture_state is stable (no state change by capturing)", d == [], d)
        check(f"[{tag}] capture sees sieve, DELETED.*, shared seen",
              "alice" in s1["sieve"] and s1["sieve"]["alice"]["scripts"] == [["main", True]]
              and any(e[2].startswith("DELETED.user.carol") for e in s1["admin"]["list"])
              and "user.alice.Work" in s1["users"]["bob"]["folders"]
              and "carol" not in s1["users"] and "erin" in s1["users"])

        master.stop()
        check(f"[{tag}] master stopped", not master.is_running())
        copy_data(master, replica)
        master.start()
        replica.start()
        check(f"[{tag}] both running", master.is_running() and replica.is_running())

        a = cl.capture_state(master)
        d = cl.diff_states(s1, a)
        check(f"[{tag}] master unchanged across restart", d == [], d)
        b = cl.capture_state(replica)
        d = cl.diff_states(a, b)
        nmsg = sum(len(f.get("messages", {})) for u in b["users"].values()
                   for f in u["folders"].values())
        check(f"[{tag}] copy equals master ({nmsg} messages compared)", d == [] and nmsg > 300, d)

        if legacy:
            ok = (os.path.isdir(os.path.join(replica.spool, "a", "user", "alice"))
                  and not os.path.exists(os.path.join(replica.spool, "uuid")))
        else:
            ok = (os.path.isdir(os.path.join(replica.spool, "uuid"))
                  and not os.path.exists(os.path.join(replica.spool, "a", "user")))
        check(f"[{tag}] spool layout on disk", ok, sorted(os.listdir(replica.spool)))

        f = cl.reconstruct_findings(replica)
        check(f"[{tag}] reconstruct_findings(copy) == []", f == [], f)

        uid = flip_flag(replica)
        b2 = cl.capture_state(replica)
        d = cl.diff_states(a, b2)
        check(f"[{tag}] diff_states reports a changed flag",
              any(x.startswith(f"users/alice/folders/INBOX/messages/{uid}/flags") for x in d),
              d or ["(no differences reported)"])

        path = corrupt_one_message(replica)
        f = cl.reconstruct_findings(replica)
        check(f"[{tag}] reconstruct_findings reports a corrupted message file",
              any("guid mismatch" in x or "mismatch" in x for x in f),
              f or [f"(nothing reported for {path})"])
    except Exception:
        check(f"[{tag}] no exception", False, traceback.format_exc().splitlines())
    finally:
        for inst in (replica, master):
            try:
                inst.stop()
            except Exception as e:
                check(f"[{tag}] stop {inst.name}", False, repr(e))
        check(f"[{tag}] both stopped", not master.is_running() and not replica.is_running())
    say(f"[{tag}] done in {time.monotonic() - t0:.1f} s")


def main() -> int:
    cl.require_environment()
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="cyl-", dir="/tmp")   # short: unix socket paths < 100 bytes
    try:
        # The two layouts are independent instances (own dirs, ports, sockets); running them
        # side by side halves the wall time, which is dominated by Cyrus' fsyncs.
        threads = [threading.Thread(target=scenario, args=(tmp, legacy), name=f"legacy={legacy}")
                   for legacy in (False, True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        if os.environ.get("CYRUSLAB_KEEP") == "1":
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - t0:.1f} s")
    print(f"harness selfcheck: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
