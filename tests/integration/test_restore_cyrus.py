#!/usr/bin/env python3
"""Restore a user into a fresh Cyrus 3.6.1, per layout (uuid, then legacy_dirs): a populated and
mutated master is synced to a replica and snapshotted twice from the replica slot; then
`cyrsync restore -u alice --into-spool -C fresh.conf` fills a never-started instance,
`ctl_mboxlist -u` registers the folders (run by cyrsync in the uuid scenario; in the legacy one
cyrsync only prints the commands with --no-undump and the test runs them), `reconstruct -r
user.alice` follows, the instance starts, and alice as seen over IMAP and ManageSieve is compared
with the master: folders, UIDs, UIDVALIDITY/UIDNEXT, flags incl. \\Seen, internal dates, sizes,
bodies by hash, MAILBOXIDs, ACLs, LSUB, sieve scripts and the active one. Also: reconstruct -n -G
and chk_cyrus find nothing, the restored server keeps working (APPEND gets the next UID, the
active sieve script files LMTP mail), and a second restore into the now occupied spool is
refused."""

import copy
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyruslab as cl  # noqa: E402
import cyrsync_lab as lab  # noqa: E402

check = lab.Checks()
USER = "alice"

# What the comparison leaves out, and why. Everything else of alice's view must be equal.
EXCLUDED = {
    "metadata": "mailbox annotations (GETMETADATA /private/comment, /shared/comment) live in the "
                "server-wide annotations.db, which a snapshot does not archive",
    "other users' folders": "only alice is restored: folders of other users (or shared ones) "
                            "that alice can see are not part of her archive",
}
# In the mailboxes.db entries (`ctl_mboxlist -d`), beside the above:
EXCLUDED_MBOXLIST = {
    "mtime": "ctl_mboxlist -u of 3.6.1 stamps every entry it writes with its own clock",
    "foldermodseq": "the modseq of the last folder-level change is kept only in mailboxes.db, "
                    "which a snapshot does not archive; the restore uses the folder's "
                    "HIGHESTMODSEQ, an upper bound (checked)",
    "tombstones": "entries of deleted or renamed-away names (mbtype with 'd') are mailboxes.db "
                  "history, not folders; they are not restored",
}



def cyrsync(*args, timeout=600):
    p = subprocess.run([lab.BIN, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def write_config(base, pki, replica_port):
    return lab.snapshot_config(base, pki, (USER,), replica_port, workers=1)


def own(name):
    return name == "INBOX" or name.startswith("INBOX" + cl.SEP)


def own_admin(name):
    return name == f"user.{USER}" or name.startswith(f"user.{USER}.")


def alice_view(state):
    """alice's part of a capture_state() result with the EXCLUDED parts taken out; returns
    (view, excluded values) so that excluded differences can still be shown."""
    u = copy.deepcopy(state["users"][USER])
    excluded = {}
    excluded["other users' folders"] = [e[2] for e in u["list"] if not own(e[2])]
    u["list"] = [e for e in u["list"] if own(e[2])]
    u["lsub"] = [e for e in u["lsub"] if own(e[2])]
    u["folders"] = {k: v for k, v in u["folders"].items() if own(k)}
    for box, fd in u["folders"].items():
        excluded[f"{box} metadata"] = fd.pop("metadata", None)
    view = {
        "user": u,  # with its quotaroot: the archive holds the quota root file (quotalegacy)
        "admin quotaroot": state["admin"]["quotaroot"].get(USER),
        "sieve": state["sieve"].get(USER),
        "admin list": [e for e in state["admin"]["list"] if own_admin(e[2])],
        "admin acl": {n: v for n, v in state["admin"]["acl"].items() if own_admin(n)},
    }
    return view, excluded


def alice_mboxlist(inst):
    """alice's live mailboxes.db entries as `ctl_mboxlist -d` prints them."""
    dump = json.loads(inst.tool("ctl_mboxlist", "-d", check=True).stdout)
    return {n: e for n, e in dump.items()
            if own_admin(n) and "d" not in e.get("mbtype", "")[1:]}


def compare_mboxlist(a, b):
    problems = []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            problems.append(f"{name}: only on the {'master' if name in a else 'restored server'}")
            continue
        x = {k: v for k, v in a[name].items() if k not in EXCLUDED_MBOXLIST}
        y = {k: v for k, v in b[name].items() if k not in EXCLUDED_MBOXLIST}
        if x != y:
            problems.append(f"{name}: master {cl._short(x, 400)} restored {cl._short(y, 400)}")
        if int(b[name]["foldermodseq"]) < int(a[name]["foldermodseq"]):
            problems.append(f"{name}: foldermodseq went back {a[name]['foldermodseq']} -> "
                            f"{b[name]['foldermodseq']}")
    return problems


def snapshot_twice(base, master, rdaemon, conf):
    """populate -> sync -> snapshot -> mutate -> sync -> snapshot (renames, a changed sieve
    script, new mail and flags land in a second run)."""
    cl.populate(master, seed=5, messages=150)
    lab.run_sync(master, rdaemon, "-A")
    rc, out, err = cyrsync("snapshot", "-c", conf, "-u", USER)
    check("first snapshot from the replica slot", rc == 0 and 'source="replica' in out + err,
          (out + err)[-1500:])
    cl.mutate(master, seed=6)
    time.sleep(1.1)  # a change within the same second as the last copy is re-copied next pass
    lab.run_sync(master, rdaemon, "-A")
    rc, out, err = cyrsync("snapshot", "-c", conf, "-u", USER)
    check("second snapshot (after renames, new mail, a changed sieve script)",
          rc == 0 and "unchanged=true" not in out + err, (out + err)[-1500:])


def restore(fresh, conf, use_cyrsync_undump):
    args = ["restore", "-c", conf, "-u", USER, "--into-spool", "-C", fresh.conf_path,
            "--owner", cl.CYRUS_USER]
    if use_cyrsync_undump:
        rc, out, err = cyrsync(*args)
        check("restore --into-spool succeeds and registers the folders", rc == 0,
              (out + err)[-2000:])
        reconstruct = [os.path.join(cl.CYRUS_BIN, "reconstruct"), "-C", fresh.conf_path,
                       "-r", f"user.{USER}"]
        check("it names the reconstruct step", "reconstruct" in out + err, (out + err)[-800:])
        r = subprocess.run(reconstruct, capture_output=True, text=True, timeout=300)
    else:
        rc, out, err = cyrsync(*args, "--no-undump")
        cmds = [line for line in out.splitlines() if line.strip()]
        check("restore --into-spool --no-undump prints the ctl_mboxlist and reconstruct commands",
              rc == 0 and len(cmds) == 2 and "ctl_mboxlist" in cmds[0] and
              "reconstruct" in cmds[1], (out + err)[-2000:])
        u = subprocess.run(["sh", "-c", cmds[0]], capture_output=True, text=True, timeout=300)
        check("the printed ctl_mboxlist -u command works", u.returncode == 0, u.stderr[-800:])
        r = subprocess.run(["sh", "-c", cmds[1]], capture_output=True, text=True, timeout=300)
    check("reconstruct -r on the restored user", r.returncode == 0, (r.stdout + r.stderr)[-1500:])
    print(f"       reconstruct said: {(r.stdout + r.stderr).strip()[-600:]!r}", flush=True)


def still_works(fresh, b_state):
    """The restored server carries on: APPEND gets UIDNEXT, the active script files mail."""
    c = fresh.imap(USER)
    try:
        uidnext = b_state["users"][USER]["folders"]["INBOX"]["status"]["UIDNEXT"]
        typ, data = c.append("INBOX", r"(\Seen)", None,
                             b"From: t@example.org\r\nSubject: after restore\r\n\r\nhello\r\n")
        text = b" ".join(x for x in data if isinstance(x, bytes)).decode()
        check("APPEND on the restored INBOX gets the next UID (no UID reuse)",
              typ == "OK" and "APPENDUID" in text and f" {uidnext}]" in text, text)
        before = b_state["users"][USER]["folders"]["INBOX.Archive"]["status"]["MESSAGES"]
        lm = fresh.lmtp()
        try:
            res = lm.deliver("boss@example.com", [USER],
                             b"From: boss@example.com\r\nTo: alice@cyruslab\r\n"
                             b"Subject: [proj] filed by the restored script\r\n"
                             b"Message-ID: <restored.1@cyruslab.test>\r\n\r\nbody\r\n")
        finally:
            lm.close()
        st = cl._status(c, "INBOX.Archive")
        check("the restored active sieve script files new mail (into INBOX.Archive)",
              res[USER][0] == 250 and st.get("MESSAGES") == before + 1, (res, before, st))
    finally:
        c.logout()


def scenario(base, legacy):
    layout = "legacy_dirs" if legacy else "uuid"
    print(f"--- layout {layout}", flush=True)
    t0 = time.time()
    tag = "l" if legacy else "u"
    master = cl.CyrusInstance(os.path.join(base, "m"), f"rst{tag}m", legacy_dirs=legacy)
    replica = cl.CyrusInstance(os.path.join(base, "r"), f"rst{tag}r", legacy_dirs=legacy)
    fresh = cl.CyrusInstance(os.path.join(base, "f"), f"rst{tag}f", legacy_dirs=legacy)
    for inst in (master, replica, fresh):
        inst.setup()
    pki = lab.Pki(base)
    rdaemon = lab.Daemon(replica, pki)
    master.start()
    try:
        rdaemon.start()
        conf = write_config(base, pki, rdaemon.port)
        snapshot_twice(base, master, rdaemon, conf)
        a_state = cl.capture_state(master)
        a_mbox = alice_mboxlist(master)

        restore(fresh, conf, use_cyrsync_undump=not legacy)
        rc, out, err = cyrsync("restore", "-c", conf, "-u", USER, "--into-spool", "-C",
                               fresh.conf_path, "--no-undump")
        check("a second restore into the occupied spool is refused",
              rc != 0 and "already holds" in out + err, (out + err)[-800:])

        fresh.start()
        b_state = cl.capture_state(fresh)
        a_view, a_excl = alice_view(a_state)
        b_view, b_excl = alice_view(b_state)
        diffs = cl.diff_states(a_view, b_view)
        n_msgs = sum(len(f.get("messages", {})) for f in a_view["user"]["folders"].values())
        check(f"alice over IMAP/ManageSieve equals the master ({len(a_view['user']['folders'])} "
              f"folders, {n_msgs} messages)", diffs == [] and n_msgs > 50, diffs)
        check("the restored view is not empty (LSUB, sieve scripts, \\Seen flags)",
              len(a_view["user"]["lsub"]) > 3 and a_view["sieve"] and
              a_view["sieve"]["scripts"] and '"\\\\Seen"' in json.dumps(a_view), a_view["sieve"])
        check("the quota root came back with its limit",
              "STORAGE" in json.dumps(b_view["user"].get("quotaroot")),
              b_view["user"].get("quotaroot"))
        probs = compare_mboxlist(a_mbox, alice_mboxlist(fresh))
        check("mailboxes.db entries equal the master's (uniqueid, uidvalidity, mbtype, ACL, ...)",
              probs == [], probs)
        inbox = fresh.tool("mbpath", f"user.{USER}", check=True).stdout.strip()
        check(f"the restored folders use the {layout} layout",
              ("/uuid/" in inbox) != legacy and
              any(f.endswith(".") and f[:-1].isdigit() for f in os.listdir(inbox)), inbox)
        shown = [f"{k}: master={cl._short(v, 100)} restored={cl._short(b_excl.get(k), 100)}"
                 for k, v in sorted(a_excl.items()) if v != b_excl.get(k)]
        print("       excluded differences (see EXCLUDED):", flush=True)
        for line in shown:
            print(f"         {line}", flush=True)
        findings = cl.reconstruct_findings(fresh)
        check("reconstruct -n -r -G and chk_cyrus find nothing on the restored server",
              findings == [], findings)
        still_works(fresh, b_state)
    finally:
        rdaemon.stop()
        for inst in (master, replica, fresh):
            inst.stop()
    print(f"--- layout {layout}: {time.time() - t0:.1f} s", flush=True)


def main():
    cl.require_environment()
    print("excluded from the comparison:", flush=True)
    for k, why in EXCLUDED.items():
        print(f"  {k}: {why}", flush=True)
    for legacy in (False, True):
        check.run(f"scenario (legacy_dirs={legacy}) ran", "csrst", scenario, legacy)
    check.finish("restore_cyrus")


if __name__ == "__main__":
    main()
