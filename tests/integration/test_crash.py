#!/usr/bin/env python3
"""kill -9 robustness against real Cyrus 3.6.1: the replica Cyrus must never see a half-written
folder, whichever side of a sync dies, and the next sync must repair everything.

A master is populated with enough mail (1200 LMTP deliveries plus 12 one-megabyte APPENDs) that
a pass takes a measurable time. A second replica, the *oracle*, is synced uninterrupted right
before every killed pass: it holds the same state as the victim replica, so its wall time T is
about what the victim's pass takes, and the kill delays are fractions of T.

1. First sync killed: for each of 5 %, 20 %, 50 %, 80 % of T, an empty replica whose initial
   full sync is SIGKILLed at that point (the daemon keeps running), checked with reconstruct,
   then resumed by an uninterrupted pass and compared with the master.
2. Syncer kills: one complete replica; four rounds of master changes, each pass SIGKILLed at
   5 %, 20 %, 50 %, 80 % of its T, none completing; after each kill (once the daemon has closed
   every session) reconstruct -n / chk_cyrus on the stopped replica; at the end an
   uninterrupted pass must make the replica serve the same mail.
3. Purged in-flight mail: a pass is killed while a folder's new messages are in flight, the
   master then expunges and purges exactly those messages; after the next pass no file of
   them may be left on the replica (reconstruct there would bring them back).
4. Daemon kills: cl.mutate, then further changes (new folders, renames, deletes, big mail);
   each round starts from a replica equal to the master (a new one after a round that did not
   end equal and clean), the pass over the change has `cyrsync serve` SIGKILLed at 10 %, 35 %,
   65 %, 90 % of T; the syncer must terminate, `cyrsync recover` must
   exit 0, reconstruct must find nothing; after a daemon restart, passes until one exits 0
   must make the replica equal to the master again.

The reconstruct check after a kill is split in two: (a) every folder the replica lists is whole
(no message file named by its index is missing, no broken index) and (b) no message file lies
in a folder directory without being named by the folder's index (reconstruct would add it).
Note: mailboxes.db is a server file, copied after the folders, so after a killed *first* sync
the replica lists no mailboxes yet and (a)/(b) have little to look at; rounds 2 to 4 kill
passes over replicas whose mailboxes.db lists (almost) every folder.

Runs in about 80 s on an idle 2-core machine. So that it stays below 4 minutes on a busy one,
kill rounds that would start after CYRSYNC_CRASH_BUDGET seconds (default 180) are skipped and
reported as SKIPPED (not as failures).

Exit 0 = pass, 77 = skip (no root / no Cyrus), 1 = fail. CYRUSLAB_KEEP=1 keeps the temp dirs.
"""

import base64
import datetime
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyruslab as cl  # noqa: E402
import cyrsync_lab as lab  # noqa: E402

check = lab.Checks()

SYNCER_FRACTIONS = (0.05, 0.20, 0.50, 0.80)
DAEMON_FRACTIONS = (0.10, 0.35, 0.65, 0.90)



def note(text):
    print(f"       {text}", flush=True)


# CTest must see this script finish within 4 minutes even on a loaded machine: once the budget
# is used up, further kill rounds are skipped (said so in the output, not counted as failures).
BUDGET_S = float(os.environ.get("CYRSYNC_CRASH_BUDGET", "180"))
STARTED = time.monotonic()


def over_budget(what):
    if time.monotonic() - STARTED <= BUDGET_S:
        return False
    note(f"SKIPPED {what}: the time budget of {BUDGET_S:.0f}s is used up (machine too slow/busy)")
    return True


def check_landed(phase, landed, rounds):
    """At least two kills (or every kill, when fewer rounds ran) must hit a running pass."""
    need = min(2, rounds)
    check(f"{phase}: at least {need} of {rounds} kills hit a running pass", landed >= need,
          f"only {landed} landed; the passes are too short for this machine")


# ---------------------------------------------------------------------------------------------
# master changes

def add_bulk(inst, tag, targets, count, size, seed):
    """APPEND `count` messages with a ~`size` byte attachment, round robin over (user, box)."""
    rng = random.Random(seed)
    by_user = {}
    for i in range(count):
        by_user.setdefault(targets[i % len(targets)][0], []).append((i, targets[i % len(targets)][1]))
    for user, items in by_user.items():
        c = inst.imap(user)
        try:
            for i, box in items:
                blob = base64.encodebytes(rng.randbytes(size * 3 // 4)).replace(b"\n", b"\r\n")
                when = cl.BASE_DATE + datetime.timedelta(hours=i)
                msg = (f"From: bulk@example.org\r\nTo: {user}@cyruslab\r\n"
                       f"Subject: bulk {tag} {i}\r\nMessage-ID: <bulk.{tag}.{i}@cyruslab.test>\r\n"
                       f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
                       "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n").encode() + blob
                cl._append(c, box, r"(\Seen)" if i % 2 else "()", when, msg)
        finally:
            c.logout()


def more_changes(inst, k):
    """Round k (1, 2, 3, ...: consecutive) of further changes on the running master: LMTP mail,
    big APPENDs, a new folder with copies, a rename of the previous round's folder, flags, an
    expunge, and a folder created and the previous one deleted (delayed delete -> DELETED.*).
    Touches alice, bob and dave only (carol is deleted by cl.mutate)."""
    rng = random.Random(100 + k)
    cl._deliver_batch(inst, rng, f"x{k}", 120, ["alice", "bob", "dave"], archive_users=("bob",))
    add_bulk(inst, f"x{k}", [("alice", "INBOX"), ("bob", "INBOX.Archive"), ("dave", "INBOX")],
             4, 700_000, seed=200 + k)
    c = inst.imap("alice")
    try:
        cl._check(c.create(cl.q(f"INBOX.Crash{k}")), "CREATE")
        cl._check(c.select("INBOX"), "SELECT")
        uids = cl._uids(c)
        chosen = [u for u in uids if rng.random() < 0.15]
        if chosen:
            cl._check(c.uid("COPY", cl._uidset(chosen), cl.q(f"INBOX.Crash{k}")), "COPY")
        cl._store(c, [u for u in uids if rng.random() < 0.1], "+FLAGS", r"(\Flagged)")
        cl._store(c, [u for u in uids if rng.random() < 0.1], "-FLAGS", r"(\Seen)")
        c.close()
        if k >= 2:
            cl._check(c.rename(cl.q(f"INBOX.Crash{k - 1}"), cl.q(f"INBOX.Work.Crash{k - 1}")),
                      "RENAME")
    finally:
        c.logout()
    c = inst.imap("bob")
    try:
        cl._check(c.select("INBOX"), "SELECT")
        uids = cl._uids(c)
        cl._store(c, rng.sample(uids, min(3, len(uids))), "+FLAGS", r"(\Deleted)")
        cl._check(c.expunge(), "EXPUNGE")
        c.close()
    finally:
        c.logout()
    c = inst.imap("dave")
    try:
        cl._check(c.create(cl.q(f"INBOX.Tmp{k}")), "CREATE")
        cl._check(c.select("INBOX"), "SELECT")
        uids = cl._uids(c)
        if uids:
            cl._check(c.uid("COPY", cl._uidset(uids[:10]), cl.q(f"INBOX.Tmp{k}")), "COPY")
        c.close()
        if k >= 2:
            cl._check(c.delete(cl.q(f"INBOX.Tmp{k - 1}")), "DELETE")
    finally:
        c.logout()


# ---------------------------------------------------------------------------------------------
# helpers

def timed_sync(src, daemon):
    t = time.monotonic()
    rc, out, st = lab.run_sync(src, daemon, "-A", check=False)
    return time.monotonic() - t, rc, out, st


def start_sync(src, daemon, log_path):
    log = open(log_path, "wb")
    p = subprocess.Popen(lab.sync_cmd(src, daemon, "-A"), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return p


def tail(path, n=2000):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")[-n:].splitlines()
    except OSError:
        return ["(no log)"]


def stage_leftovers(inst):
    d = os.path.join(inst.spool, ".cyrsync-tmp")
    try:
        return len(os.listdir(d))
    except OSError:
        return 0


def hidden_temps(inst):
    """Hidden temp files (".cyrsync-<pid>-<n>") in folder directories: message files staged by an
    exchange that never installed. The root staging directory is not counted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(inst.spool):
        dirnames[:] = [n for n in dirnames if n != ".cyrsync-tmp"]
        out += [os.path.join(dirpath, n) for n in filenames if n.startswith(".cyrsync-")]
    return out


def sync_until_ok(src, daemon, tries=3):
    outs = []
    for i in range(tries):
        rc, out, st = lab.run_sync(src, daemon, "-A", check=False)
        outs.append(f"try {i + 1}: rc={rc}")
        outs.extend(out[-1500:].splitlines())
        if rc == 0:
            return i + 1, outs
    return None, outs


def compare_to(master_state, replica):
    replica.start()
    try:
        b = cl.capture_state(replica)
    finally:
        replica.stop()
    return cl.diff_states(master_state, b)


# ---------------------------------------------------------------------------------------------

class Lab:
    """The master, the oracle and the victims, with their daemons; stop() ends them all."""

    def __init__(self, base):
        self.base = base
        self.pki = lab.Pki(base)
        self.logs = os.path.join(base, "logs")
        os.makedirs(self.logs)
        self.instances = []
        self.daemons = []

    def instance(self, short, with_daemon=True):
        inst = cl.CyrusInstance(os.path.join(self.base, short), f"cr{short}")
        inst.setup()
        self.instances.append(inst)
        if not with_daemon:
            return inst, None
        d = lab.Daemon(inst, self.pki)
        self.daemons.append(d)
        d.start()
        return inst, d

    def drop(self, inst, d):
        """Stops a victim and (unless CYRUSLAB_KEEP=1) removes its tree."""
        d.stop()
        inst.stop()
        if os.environ.get("CYRUSLAB_KEEP") != "1":
            shutil.rmtree(inst.base, ignore_errors=True)

    def stop(self):
        for d in self.daemons:
            d.stop()
        for inst in self.instances:
            inst.stop()


def kill_syncer_at(lb, src, d, delay, log_name):
    """Starts a pass and SIGKILLs it after `delay` seconds. Returns (it was still running then,
    the path of its log)."""
    log_path = os.path.join(lb.logs, log_name)
    p = start_sync(src, d, log_path)
    time.sleep(delay)
    running = p.poll() is None
    if running:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return running, log_path


def is_stray(finding):
    """reconstruct -n reports a message file its folder's index does not name as "uid N found -
    adding" (N above the index's last uid) or "uid N rediscovered - appending"."""
    return finding.endswith("found - adding") or "rediscovered" in finding


def check_kill_findings(tag, victim, log_path):
    """reconstruct -n / chk_cyrus right after a kill, in two checks: (1) every folder the replica
    lists is whole: no message file named by its index is missing, no index is broken; (2) no
    message file lies in a folder directory without being named by its index (reconstruct
    would add it: "uid N found - adding")."""
    findings = cl.reconstruct_findings(victim)
    strays = [f for f in findings if is_stray(f)]
    other = [f for f in findings if f not in strays]
    check(f"{tag}: every folder the replica lists is whole (reconstruct/chk_cyrus: no missing "
          f"message file, no broken index)", other == [], other + tail(log_path, 800))
    check(f"{tag}: no message files that the folder's index does not name", strays == [],
          strays[:8] + [f"... {len(strays)} such findings in all"])


def after_syncer_kill(tag, d, victim, log_path):
    check(f"{tag}: daemon closes the killed syncer's sessions", d.wait_idle(30),
          d.log_text()[-1500:].splitlines())
    check(f"{tag}: daemon survives", d.proc.poll() is None, d.log_text()[-1500:].splitlines())
    check_kill_findings(tag, victim, log_path)


def phase_first_sync_kills(lb, master, d_oracle, master_state):
    """Each fraction on its own empty replica: the initial full sync is killed at that point,
    then resumed by an uninterrupted pass."""
    T, rc, out, st = timed_sync(master, d_oracle)
    check("first sync: uninterrupted oracle pass succeeds", rc == 0, out[-1500:].splitlines())
    note(f"first sync: T={T:.3f}s folders={st.get('folders')} messages={st.get('messages')} "
         f"bytes={st.get('bytes')}")
    landed = rounds = 0
    for k, frac in enumerate(SYNCER_FRACTIONS):
        tag = f"first sync killed at {int(frac * 100)}%"
        if over_budget(tag):
            break
        rounds += 1
        victim, d = lb.instance(f"a{k}")
        try:
            running, log_path = kill_syncer_at(lb, master, d, frac * T, f"first-kill-{k}.log")
            landed += running
            note(f"{tag}: SIGKILL after {frac * T:.3f}s "
                 f"({'while it ran' if running else 'the pass had already ended'}); "
                 f"staged files left: {stage_leftovers(victim)}")
            after_syncer_kill(tag, d, victim, log_path)
            rc, out, st = lab.run_sync(master, d, "-A", check=False)
            check(f"{tag}: the resuming pass succeeds", rc == 0, out[-1500:].splitlines())
            diffs = compare_to(master_state, victim)
            check(f"{tag}: after the resuming pass the replica serves the same mail", diffs == [],
                  diffs)
            findings = cl.reconstruct_findings(victim)
            check(f"{tag}: after the resuming pass reconstruct/chk_cyrus find nothing",
                  findings == [], findings)
        finally:
            lb.drop(victim, d)
    check_landed("first sync", landed, rounds)


def phase_syncer_kills(lb, master, d_oracle):
    """One complete replica; passes over fresh master changes are killed one after the other
    (none completes), then an uninterrupted pass."""
    victim, d = lb.instance("b")
    rc, out, st = lab.run_sync(master, d, "-A", check=False)
    check("syncer kills: initial uninterrupted pass succeeds", rc == 0, out[-1500:].splitlines())
    landed = rounds = 0
    for k, frac in enumerate(SYNCER_FRACTIONS):
        tag = f"syncer kill {k} ({int(frac * 100)}% of T)"
        if over_budget(tag):
            break
        rounds += 1
        more_changes(master, k + 1)
        T, rc, out, st = timed_sync(master, d_oracle)
        if not check(f"{tag}: uninterrupted oracle pass succeeds", rc == 0,
                     out[-1500:].splitlines()):
            continue
        running, log_path = kill_syncer_at(lb, master, d, frac * T, f"sync-kill-{k}.log")
        landed += running
        note(f"{tag}: T={T:.3f}s messages={st.get('messages')} bytes={st.get('bytes')}; SIGKILL "
             f"after {frac * T:.3f}s ({'while it ran' if running else 'the pass had already ended'})")
        after_syncer_kill(tag, d, victim, log_path)
    check_landed("syncer kills", landed, rounds)
    note(f"syncer kills: staged files left behind by killed sessions: {stage_leftovers(victim)}")
    rc, out, st = lab.run_sync(master, d, "-A", check=False)
    check("syncer kills: a final uninterrupted pass succeeds", rc == 0, out[-1500:].splitlines())
    diffs, findings, _, _ = lab.compare(master, victim)
    check("syncer kills: replica serves the same mail", diffs == [], diffs)
    check("syncer kills: reconstruct/chk_cyrus find nothing", findings == [], findings)
    lb.drop(victim, d)


def phase_purged_strays(lb, master, d_oracle):
    """A pass is killed while a folder's new messages are in flight; the master then expunges
    and purges exactly those messages (cyr_expire). The next uninterrupted pass must leave no
    file of them on the replica: a file there that no index names would be put back into the
    folder by a reconstruct on the replica (after a failover, say)."""
    if over_budget("purged in-flight mail"):
        return
    victim, d = lb.instance("p")
    try:
        rc, out, st = lab.run_sync(master, d, "-A", check=False)
        if not check("purged in-flight mail: initial uninterrupted pass succeeds", rc == 0,
                     out[-1500:].splitlines()):
            return
        c = master.imap("alice")
        try:
            cl._check(c.select("INBOX"), "SELECT")
            before = set(cl._uids(c))
        finally:
            c.logout()
        add_bulk(master, "s", [("alice", "INBOX")], 40, 400_000, seed=11)
        timed_sync(master, d_oracle)
        # Kill the pass as soon as the first new message files land in the replica's copy of
        # the folder (its directory has the same place below the partition on both sides).
        r = master.tool("mbpath", "user.alice")
        folder_dir = os.path.join(victim.spool,
                                  os.path.relpath(r.stdout.strip().splitlines()[0], master.spool))
        top = max(before)
        log_path = os.path.join(lb.logs, "purge-kill.log")
        p = start_sync(master, d, log_path)
        arrived = 0
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            try:
                arrived = sum(1 for f in os.listdir(folder_dir)
                              if f.endswith(".") and f[:-1].isdigit() and int(f[:-1]) > top)
            except OSError:
                arrived = 0
            if arrived:
                break
            time.sleep(0.002)
        running = p.poll() is None
        if running:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
        d.wait_idle(30)
        strays = [f for f in cl.reconstruct_findings(victim) if is_stray(f)]
        note(f"purged in-flight mail: SIGKILL {'while' if running else 'after'} the pass ran, "
             f"{arrived} new message file(s) seen in the folder; {len(strays)} unindexed message "
             f"files on the replica after the kill")
        c = master.imap("alice")
        try:
            cl._check(c.select("INBOX"), "SELECT")
            new = [u for u in cl._uids(c) if u not in before]
            cl._store(c, new, "+FLAGS", r"(\Deleted)")
            cl._check(c.expunge(), "EXPUNGE")
        finally:
            c.logout()
        r = master.tool("cyr_expire", "-X", "0", "-D", "0")
        check("purged in-flight mail: cyr_expire on the master succeeds", r.returncode == 0,
              (r.stdout + r.stderr).splitlines())
        rc, out, st = lab.run_sync(master, d, "-A", check=False)
        check("purged in-flight mail: the next uninterrupted pass succeeds", rc == 0,
              out[-1500:].splitlines())
        findings = cl.reconstruct_findings(victim)
        check("purged in-flight mail: no file of a purged message is left on the replica "
              "(reconstruct/chk_cyrus find nothing)", findings == [],
              findings[:10] + [f"... {len(findings)} findings in all"])
        diffs = compare_to(cl.capture_state(master), victim)
        check("purged in-flight mail: replica serves the same mail", diffs == [], diffs)
    finally:
        lb.drop(victim, d)
        timed_sync(master, d_oracle)   # the oracle follows the master again


def phase_daemon_kills(lb, master, d_oracle):
    """cl.mutate, then further changes; a pass over each change is killed on the daemon side;
    recover, restart, resync, compare. A round starts from a replica equal to the master; after
    a round that did not end equal and clean, the next one starts on a new replica (so a failed
    round cannot spill into the next)."""
    landed = rounds = 0
    victim = d = None
    for k, frac in enumerate(DAEMON_FRACTIONS):
        tag = f"daemon kill {k} ({int(frac * 100)}% of T)"
        if over_budget(tag):
            break
        rounds += 1
        clean = False
        try:
            if victim is None:
                victim, d = lb.instance(f"c{k}")
                rc, out, st = lab.run_sync(master, d, "-A", check=False)
                if not check(f"{tag}: initial uninterrupted pass into a new replica succeeds",
                             rc == 0, out[-1500:].splitlines()):
                    continue
            running, clean = daemon_kill_round(lb, master, d_oracle, victim, d, k, frac, tag)
            landed += running
        finally:
            if not clean and victim is not None:
                lb.drop(victim, d)
                victim = d = None
    if victim is not None:
        lb.drop(victim, d)
    check_landed("daemon kills", landed, rounds)


def daemon_kill_round(lb, master, d_oracle, victim, d, k, frac, tag):
    """Returns (the kill hit a running pass, the replica ended equal to the master and clean)."""
    if k == 0:
        cl.mutate(master, seed=2)
    else:
        more_changes(master, len(SYNCER_FRACTIONS) + k)
    T, rc, out, st = timed_sync(master, d_oracle)
    if not check(f"{tag}: uninterrupted oracle pass succeeds", rc == 0, out[-1500:].splitlines()):
        return False, False
    delay = frac * T
    log_path = os.path.join(lb.logs, f"serve-kill-{k}.log")
    p = start_sync(master, d, log_path)
    time.sleep(delay)
    running = p.poll() is None
    d.kill9()
    try:
        p.wait(timeout=120)
        ended = True
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        ended = False
    note(f"{tag}: T={T:.3f}s messages={st.get('messages')} bytes={st.get('bytes')}; SIGKILL "
         f"after {delay:.3f}s ({'while it ran' if running else 'the pass had already ended'}); "
         f"syncer rc={p.returncode}")
    check(f"{tag}: the syncer terminates after the daemon died", ended, tail(log_path))
    left = hidden_temps(victim)
    rc, rout = lab.recover(victim)
    check(f"{tag}: cyrsync recover exits 0", rc == 0, rout.splitlines())
    after = hidden_temps(victim)
    note(f"{tag}: hidden temp files in folder directories after the kill: {len(left)}, after "
         f"recover: {len(after)}")
    check(f"{tag}: recover removes the killed exchange's hidden temp files", after == [], after)
    if "rolled forward" in rout:
        note(f"{tag}: recover rolled an install journal forward")
    check_kill_findings(tag, victim, log_path)
    d.start()
    tries, outs = sync_until_ok(master, d)
    if not check(f"{tag}: a sync after the daemon restart exits 0", tries is not None, outs):
        return running, False
    if tries > 1:
        note(f"{tag}: needed {tries} passes")
    diffs, findings, _, _ = lab.compare(master, victim)
    ok = check(f"{tag}: after the resync the replica serves the same mail", diffs == [], diffs)
    ok &= check(f"{tag}: after the resync reconstruct/chk_cyrus find nothing", findings == [],
                findings)
    return running, ok


def scenario(base):
    lb = Lab(base)
    try:
        master, _ = lb.instance("m", with_daemon=False)
        oracle, d_oracle = lb.instance("o")
        master.start()
        t = time.monotonic()
        cl.populate(master, seed=1, messages=1200)
        add_bulk(master, "p", [("alice", "INBOX"), ("bob", "INBOX.Archive"),
                               ("carol", "INBOX"), ("alice", "INBOX.Work")], 12, 1_000_000, seed=7)
        note(f"populated master in {time.monotonic() - t:.1f}s")
        master_state = cl.capture_state(master)
        for phase, args in ((phase_first_sync_kills, (master_state,)), (phase_syncer_kills, ()),
                            (phase_purged_strays, ()), (phase_daemon_kills, ())):
            t = time.monotonic()
            phase(lb, master, d_oracle, *args)
            note(f"{phase.__name__} took {time.monotonic() - t:.1f}s")
    finally:
        lb.stop()


def main():
    cl.require_environment()
    t = time.monotonic()
    check.run("scenario ran", "cscr", scenario)
    print(f"       took {time.monotonic() - t:.0f}s", flush=True)
    check.finish("crash")


if __name__ == "__main__":
    main()
