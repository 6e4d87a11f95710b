#!/usr/bin/env python3
"""Snapshots against real Cyrus 3.6.1: a populated master is synced to a replica; the snapshot
host archives every user from the replica slot through the daemon's read service (the master
slot: a read-only daemon beside the running master). Checks: GNU tar reads the archives; a
restored user equals the master's folders (index bytes, message bodies by hash); a message in
two folders is stored once; a rename adds no message records; a deleted folder stays
restorable as of an earlier run; compaction keeps everything restorable and shrinks the file;
reindex rebuilds an equal index; kill -9 during a snapshot loses nothing; a truncated archive
gets a clear error naming an offset while its readable part stays restorable; slot selection
(replica by default, master on request, fallback when the replica is down, or failure)."""

import glob
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyruslab as cl  # noqa: E402
import cyrsync_lab as lab  # noqa: E402

check = lab.Checks()



def cyrsync(*args, check_rc=None, timeout=600):
    p = subprocess.run([lab.BIN, *args], capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    if check_rc is not None and p.returncode != check_rc:
        raise RuntimeError(f"cyrsync {' '.join(args)} rc={p.returncode}:\n{out[-3000:]}")
    return p.returncode, out


def write_config(base, pki, replica_port, master_port, **extra):
    path = os.path.join(base, "snapshot.json" if not extra else "snapshot-alt.json")
    return lab.snapshot_config(base, pki, ("alice", "bob", "carol", "dave"), replica_port,
                               master_port, path=path, **extra)


def folder_dirs(inst, user):
    """internal name -> data directory, for the user's real folders on an instance."""
    out = {}
    dump = json.loads(inst.tool("ctl_mboxlist", "-d", check=True).stdout)
    for name, e in dump.items():
        if "partition" not in e or "d" in e.get("mbtype", "")[1:]:
            continue
        if name == f"user.{user}" or name.startswith(f"user.{user}."):
            out[name] = inst.tool("mbpath", name, check=True).stdout.strip()
    return out


def sha1_file(p):
    with open(p, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def compare_restored(master, user, restored_root):
    """Restored tree vs master: same cyrus.index bytes and the same message files by hash."""
    problems = []
    for name, d in folder_dirs(master, user).items():
        rd = os.path.join(restored_root, *name.split("."))
        if not os.path.isdir(rd):
            problems.append(f"{name}: not restored")
            continue
        if sha1_file(os.path.join(d, "cyrus.index")) != sha1_file(os.path.join(rd, "cyrus.index")):
            problems.append(f"{name}: cyrus.index differs")
        for f in os.listdir(d):
            if f.endswith(".") and f[:-1].isdigit():
                rf = os.path.join(rd, f)
                if not os.path.exists(rf) or sha1_file(rf) != sha1_file(os.path.join(d, f)):
                    problems.append(f"{name}/{f}: missing or different")
    return problems


def index_rows(path):
    db = sqlite3.connect(path)
    try:
        return sorted(db.execute("SELECT name, kind, link_target, sha1, size, run_id, member_offset,"
                                 " data_offset FROM entries").fetchall())
    finally:
        db.close()


def messages_of(state, user, box):
    # uid -> flags, internal date, size, body sha1 (modseq differs in a new folder)
    msgs = state["users"][user]["folders"].get(box, {}).get("messages", {})
    return {uid: {k: v for k, v in m.items() if k != "modseq"} for uid, m in msgs.items()}


def live_restore(master, conf, base):
    """Restores into the running master through its daemon, as new folders."""
    rc, out = cyrsync("restore", "-c", conf, "-u", "alice", "--folder", "user.alice",
                      "--into-slot", "master", "--as", "user.alice.Back")
    check("restore of a folder into the running master succeeds", rc == 0 and
          "folder created mailbox=user.alice.Back" in out, out[-1500:])
    state = cl.capture_state(master)
    inbox, back = messages_of(state, "alice", "INBOX"), messages_of(state, "alice", "INBOX.Back")
    check("the new folder serves the archived messages: UIDs, flags, dates, bodies",
          inbox and inbox == back, (len(inbox), len(back)))
    uid = sorted(inbox, key=int)[0]
    rc, out = cyrsync("restore", "-c", conf, "-u", "alice", "--folder", "user.alice",
                      "--uid", uid, "--into-slot", "master", "--as", "user.alice.One")
    state = cl.capture_state(master)
    one = messages_of(state, "alice", "INBOX.One")
    check("one message restores into a new folder holding just it",
          rc == 0 and list(one) == [uid] and one[uid] == inbox[uid], [out[-800:], list(one)])
    rc, out = cyrsync("restore", "-c", conf, "-u", "alice", "--folder", "user.alice",
                      "--into-slot", "master", "--as", "user.alice.Back")
    check("an existing folder is never restored over", rc != 0 and "already exists" in out,
          out[-800:])
    rc, out = cyrsync("restore", "-c", conf, "-u", "alice", "--folder", "user.alice",
                      "--into-slot", "master", "--as", "user.nobody.X")
    check("a target outside an existing user is refused", rc != 0 and "existing user" in out,
          out[-800:])
    rc, out = cyrsync("restore", "-c", conf, "-u", "bob", "--into-slot", "master",
                      "--as", "user.bob.Old")
    state = cl.capture_state(master)
    folders = state["users"]["bob"]["folders"]
    orig = [b for b in folders if b == "INBOX" or (b.startswith("INBOX.") and
                                                   not b.startswith("INBOX.Old"))]
    same = all(messages_of(state, "bob", b) ==
               messages_of(state, "bob", "INBOX.Old" + b[len("INBOX"):]) for b in orig)
    check("a whole user restores below a new parent, every folder equal",
          rc == 0 and len(orig) > 1 and same, [out[-800:], sorted(folders)])
    findings = cl.reconstruct_findings(master)
    check("reconstruct -n finds nothing to fix on the master afterwards", findings == [],
          findings[:10])
    # The restored messages count against the owner's quota at once: the usage Cyrus reports
    # is what `quota -f` (a full recount) makes it.
    before = storage_usage(master, "alice")
    master.tool("quota", "-f", "-u", "alice", check=True)
    check("the owner's quota usage includes the restored folders", before is not None and
          before == storage_usage(master, "alice"), (before, storage_usage(master, "alice")))


def clear_guid(index_path, uid):
    """Zeroes one record's GUID in a cyrus.index (v10+: GUID at 60) and reseals its CRC, as a
    record written before Cyrus had GUIDs looks."""
    with open(index_path, "r+b") as f:
        b = bytearray(f.read())
        start, size, count = struct.unpack(">III", b[12:24])
        for i in range(count):
            o = start + i * size
            if struct.unpack(">I", b[o:o + 4])[0] != uid:
                continue
            b[o + 60:o + 80] = bytes(20)
            b[o + size - 4:o + size] = struct.pack(">I", zlib.crc32(bytes(b[o:o + size - 4])))
            f.seek(0)
            f.write(b)
            return True
    return False


def deliver_and_sync(master, rdaemon, user, tag, body):
    """One message to user on the master, then a sync to the replica slot."""
    lmtp = master.lmtp()
    lmtp.deliver("x@example.org", [user], b"From: x@example.org\r\nTo: %s\r\n"
                 b"Subject: %s\r\nMessage-ID: <%s@t>\r\n\r\n%s\r\n"
                 % (user.encode(), tag.encode(), tag.encode(), body))
    lmtp.close()
    time.sleep(1.1)  # past the racy window: the next pass copies it as settled
    lab.run_sync(master, rdaemon, "-A")


def without_guid(master, replica, rdaemon, conf, base):
    """A record without GUID on the slot: its body is archived under its SHA-1 and restores."""
    deliver_and_sync(master, rdaemon, "dave", "noguid", b"old mail")
    rinbox = folder_dirs(replica, "dave")["user.dave"]
    uid = max(int(f[:-1]) for f in os.listdir(rinbox) if f.endswith(".") and f[:-1].isdigit())
    cleared = clear_guid(os.path.join(rinbox, "cyrus.index"), uid)
    rc, out = cyrsync("snapshot", "-c", conf, "-u", "dave")
    check("a record without GUID is archived, counted in the log",
          cleared and rc == 0 and "messages_without_guid=1" in out and "messages=1" in out,
          out[-800:])
    rcv, vout = cyrsync("verify", "-c", conf, "-u", "dave", "--against-slot")
    one = os.path.join(base, "noguid")
    rcr, rout = cyrsync("restore", "-c", conf, "-u", "dave", "--folder", "user.dave",
                        "--uid", str(uid), "--to", one)
    minbox = folder_dirs(master, "dave")["user.dave"]
    restored = os.path.join(one, f"{uid}.")
    check("it verifies against the slot and restores to the master's bytes",
          rcv == 0 and rcr == 0 and os.path.exists(restored) and
          sha1_file(restored) == sha1_file(os.path.join(minbox, f"{uid}.")),
          vout[-800:] + rout[-800:])
    lab.run_sync(master, rdaemon, "-A")  # the replica's index is the master's again


def storage_usage(inst, user):
    """The STORAGE usage (KiB) of the user's quota root as IMAP GETQUOTAROOT reports it."""
    c = inst.imap(user)
    try:
        typ, data = c.getquotaroot("INBOX")
    finally:
        c.logout()
    for item in data[1] if typ == "OK" and len(data) > 1 else []:
        text = item.decode() if isinstance(item, bytes) else str(item)
        words = text.replace("(", " ").replace(")", " ").split()
        if "STORAGE" in words:
            return int(words[words.index("STORAGE") + 1])
    return None


def scenario(base):
    master = cl.CyrusInstance(os.path.join(base, "m"), "snapm")
    replica = cl.CyrusInstance(os.path.join(base, "r"), "snapr")
    master.setup()
    replica.setup()
    pki = lab.Pki(base)
    rdaemon = lab.Daemon(replica, pki)
    mdaemon = lab.Daemon(master, pki, state_dir=os.path.join(base, "mstate"))
    mdaemon.extra = ["--read-only", "--allow-restore", "--cyrus-bin", cl.CYRUS_BIN]
    master.start()
    try:
        cl.populate(master, seed=3, messages=150)
        rdaemon.start()
        mdaemon.start()
        lab.run_sync(master, rdaemon, "-A")
        conf = write_config(base, pki, rdaemon.port, mdaemon.port)
        archives = os.path.join(base, "archives")

        before = rdaemon.accepted()
        rc, out = cyrsync("snapshot", "-c", conf, "-A")
        check("snapshot of every user succeeds from the replica slot",
              rc == 0 and out.count('source="replica') == 4, out[-2000:])
        # A worker's users share its connection: no TLS handshake per user.
        check("the users of a worker share one connection to the slot",
              rdaemon.accepted() - before <= 2, f"{rdaemon.accepted() - before} connections")
        alice = os.path.join(archives, "alice.tar.gz")
        t = subprocess.run(["tar", "tzf", alice], capture_output=True, text=True)
        x = os.path.join(base, "x")
        os.makedirs(x)
        xr = subprocess.run(["tar", "xzf", alice, "-C", x], capture_output=True, text=True)
        check("GNU tar lists and extracts the archive", t.returncode == 0 and xr.returncode == 0 and
              any(n.startswith("files/") for n in t.stdout.split()), t.stderr + xr.stderr)

        rc, out = cyrsync("snapshot", "-c", conf, "-u", "alice")
        check("an unchanged user adds no run", rc == 0 and "unchanged=true" in out, out[-800:])

        rc, out = cyrsync("verify", "-c", conf, "-u", "alice", "--against-slot", "--json")
        check("verify --against-slot: what the replica serves is archived", rc == 0, out[-1500:])
        deliver_and_sync(master, rdaemon, "alice", "late", b"new mail")
        rc, out = cyrsync("verify", "-c", conf, "-u", "alice", "--against-slot", "--json")
        check("verify --against-slot reports mail the archive lacks", rc != 0 and
              "is not archived" in out, out[-1500:])
        master.sieve_put("alice", "late", 'keep;\r\n', activate=False)
        time.sleep(1.1)
        lab.run_sync(master, rdaemon, "-A")
        rc, out = cyrsync("verify", "-c", conf, "-u", "alice", "--against-slot", "--json")
        check("verify --against-slot reports a user file the archive lacks (a new sieve script's bytecode)",
              rc != 0 and "sieve/late.bc is not archived" in out, out[-1500:])
        cyrsync("snapshot", "-c", conf, "-u", "alice", check_rc=0)
        rc, out = cyrsync("verify", "-c", conf, "-u", "alice", "--against-slot")
        check("after the next snapshot it passes again", rc == 0, out[-1500:])

        r1 = os.path.join(base, "restore1")
        cyrsync("restore", "-c", conf, "-u", "alice", "--to", r1, check_rc=0)
        probs = compare_restored(master, "alice", r1)
        check("a restored user equals the master (indexes, message bodies)", probs == [], probs)

        names = t.stdout.split()
        files = [n for n in names if n.startswith("files/")]
        check("every message is stored once", len(files) == len(set(files)), len(files))

        # A rename adds link records and the renamed folder's small metadata, no message.
        c = master.imap("alice")
        c.rename("INBOX.Trash", "INBOX.Bin")
        c.logout()
        time.sleep(1.1)
        lab.run_sync(master, rdaemon, "-A")
        size_before = os.path.getsize(alice)
        rows_before = index_rows(os.path.join(archives, "alice.index.sqlite"))
        cyrsync("snapshot", "-c", conf, "-u", "alice", check_rc=0)
        rows_after = index_rows(os.path.join(archives, "alice.index.sqlite"))
        new = [r for r in rows_after if r not in rows_before]
        check("a rename adds no message records",
              not any(r[0].startswith("files/") for r in new) and
              any(r[0] == "imap/user.alice.Bin" for r in new) and
              any(r[0] == "imap/user.alice.Trash" and r[2] == "/dev/null" for r in new),
              new)
        grown = os.path.getsize(alice) - size_before
        check("a rename grows the archive by little (links and the folder's small metadata)",
              grown < 16384, [grown] + [(r[0], r[4]) for r in new])

        # Delete a folder: restorable as of the run before.
        runs = sorted({r[5] for r in rows_after})
        c = master.imap("alice")
        c.delete("INBOX.Drafts")
        c.logout()
        master.tool("cyr_expire", "-X", "0", "-D", "0", check=True)
        time.sleep(1.1)
        lab.run_sync(master, rdaemon, "-A")
        cyrsync("snapshot", "-c", conf, "-u", "alice", check_rc=0)
        rc, out = cyrsync("restore", "-c", conf, "-u", "alice", "--folder", "user.alice.Drafts",
                          "--to", os.path.join(base, "r2"))
        check("a deleted folder is not in the latest run", rc != 0 and "not in the archive" in out,
              out[-500:])
        rc, out = cyrsync("restore", "-c", conf, "-u", "alice", "--folder", "user.alice.Drafts",
                          "--run", str(runs[-1]), "--to", os.path.join(base, "r3"))
        check("a deleted folder is restorable as of an earlier run",
              rc == 0 and glob.glob(os.path.join(base, "r3", "user", "alice", "Drafts", "*.")),
              out[-500:])

        # One message, by index offset.
        inbox = folder_dirs(master, "alice")["user.alice"]
        uid = sorted(int(f[:-1]) for f in os.listdir(inbox) if f.endswith(".") and f[:-1].isdigit())[0]
        r4 = os.path.join(base, "r4")
        cyrsync("restore", "-c", conf, "-u", "alice", "--folder", "user.alice", "--uid", str(uid),
                "--to", r4, check_rc=0)
        check("one message restores by itself",
              sha1_file(os.path.join(r4, f"{uid}.")) == sha1_file(os.path.join(inbox, f"{uid}.")))

        # Reindex from the archive alone.
        idx = os.path.join(archives, "alice.index.sqlite")
        before = index_rows(idx)
        shutil.move(idx, idx + ".orig")
        cyrsync("reindex", "-c", conf, "-u", "alice", check_rc=0)
        check("reindex from the archive alone gives the same index", index_rows(idx) == before)

        rc, out = cyrsync("verify", "-c", conf, "-A", "--json")
        check("verify passes on every archive", rc == 0 and '"ok": true' in out, out[-1500:])

        # Compaction: everything restorable stays restorable, the file shrinks.
        size_before = os.path.getsize(alice)
        rc, out = cyrsync("compact", "-c", conf, "-u", "alice", "--force")
        r5 = os.path.join(base, "r5")
        cyrsync("restore", "-c", conf, "-u", "alice", "--to", r5, check_rc=0)
        probs = compare_restored(master, "alice", r5)
        check("compaction keeps the user restorable", rc == 0 and probs == [], [out[-800:]] + probs)
        check("compaction shrinks the archive", os.path.getsize(alice) < size_before,
              (size_before, os.path.getsize(alice)))
        rc, out = cyrsync("restore", "-c", conf, "-u", "alice", "--folder", "user.alice.Drafts",
                          "--run", str(runs[-1]), "--to", os.path.join(base, "r6"))
        check("a deleted folder within retention survives compaction", rc == 0, out[-500:])

        # The replica's index lists a message whose file is gone: the pipelined fetch stays in
        # step, the user fails naming the folder and uid, and the archive stays valid.
        lmtp = master.lmtp()
        for i in range(3):
            lmtp.deliver("x@example.org", ["dave"], b"From: x@example.org\r\nTo: dave\r\n"
                         b"Subject: gap %d\r\nMessage-ID: <gap%d@t>\r\n\r\nbody %d\r\n" % (i, i, i))
        lmtp.close()
        time.sleep(1.1)
        lab.run_sync(master, rdaemon, "-A")
        rinbox = folder_dirs(replica, "dave")["user.dave"]
        uids = sorted(int(f[:-1]) for f in os.listdir(rinbox) if f.endswith(".") and f[:-1].isdigit())
        gap = os.path.join(rinbox, f"{uids[-2]}.")
        shutil.move(gap, gap + "keep")
        rc, out = cyrsync("snapshot", "-c", conf, "-u", "dave")
        check("a message file missing on the slot fails the user, naming folder and uid",
              rc != 0 and f"user.dave uid {uids[-2]} is gone" in out, out[-800:])
        rcv, vout = cyrsync("verify", "-c", conf, "-u", "dave")
        check("the archive stays valid after the failed user", rcv == 0, vout[-800:])
        shutil.move(gap + "keep", gap)
        rc, out = cyrsync("snapshot", "-c", conf, "-u", "dave")
        rcv, vout = cyrsync("verify", "-c", conf, "-u", "dave", "--against-slot")
        check("with the file back the user snapshots and verifies against the slot",
              rc == 0 and rcv == 0, out[-800:] + vout[-800:])
        without_guid(master, replica, rdaemon, conf, base)

        # kill -9 during a snapshot, then run again.
        cl.mutate(master, seed=4)
        time.sleep(1.1)
        lab.run_sync(master, rdaemon, "-A")
        bob_idx = os.path.join(archives, "bob.index.sqlite")
        bob_before = index_rows(bob_idx)
        for delay in (0.05, 0.15, 0.3):
            p = subprocess.Popen([lab.BIN, "snapshot", "-c", conf, "-A"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
        rc, out = cyrsync("snapshot", "-c", conf, "-A")
        rcv, vout = cyrsync("verify", "-c", conf, "-A")
        kept = set(bob_before) <= set(index_rows(bob_idx))
        check("after kill -9 a re-run succeeds, verifies, and keeps earlier records",
              rc == 0 and rcv == 0 and kept, out[-1500:] + vout[-1500:])

        # A truncated archive: clear error with an offset; the readable part restores.
        carol = os.path.join(archives, "carol.tar.gz")
        with open(carol, "r+b") as f:
            f.truncate(os.path.getsize(carol) // 2)
        rc, out = cyrsync("verify", "-c", conf, "-u", "carol")
        check("a truncated archive fails verify naming an offset", rc != 0 and "offset" in out,
              out[-800:])

        # Slot selection.
        rc, out = cyrsync("snapshot", "-c", conf, "-u", "dave", "--from", "master")
        check("--from master reads the master slot", rc == 0 and 'source="master' in out, out[-800:])
        rdaemon.stop()
        rc, out = cyrsync("snapshot", "-c", conf, "-u", "dave")
        check("replica down: falls back to the master and says so",
              rc == 0 and 'source="master' in out and "replica unavailable" in out, out[-800:])
        strict = write_config(base, pki, rdaemon.port, mdaemon.port, on_replica_unavailable="fail")
        rc, out = cyrsync("snapshot", "-c", strict, "-u", "dave")
        check("replica down without fallback: fails", rc != 0 and "fallback" in out, out[-800:])
        live_restore(master, conf, base)
    finally:
        rdaemon.stop()
        mdaemon.stop()
        master.stop()
        replica.stop()


def main():
    cl.require_environment()
    check.run("scenario ran", "cssnap", scenario)
    check.finish("snapshot")


if __name__ == "__main__":
    main()
