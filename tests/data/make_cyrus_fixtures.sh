#!/bin/bash
# Regenerates the golden cyrus.index / cyrus.header fixtures under tests/data/cyrus-3.6.1/ from a
# real Cyrus (Debian's cyrus-imapd 3.6.1). Needs root and /usr/sbin/cyrmaster.
#
# It starts a private, throw-away instance (own config, ports, pid file; never the system one),
# delivers four messages to user.alice over LMTP, sets flags and expunges one over IMAP, stops the
# instance, and copies the mailbox's cyrus.index and cyrus.header plus an expectation file
# (expected.txt) that index_test.cc checks the parsed values against. The expectations come from
# the server's IMAP answers and from hashing the message files, not from our own parser.
#
# Usage: tests/data/make_cyrus_fixtures.sh [OUTDIR]   (default: <this dir>/cyrus-3.6.1)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$HERE/cyrus-3.6.1}"
MASTER=/usr/sbin/cyrmaster

if [[ $(id -u) -ne 0 ]]; then echo "must run as root" >&2; exit 1; fi
if [[ ! -x $MASTER ]]; then echo "$MASTER missing: apt-get install cyrus-imapd" >&2; exit 1; fi

# Short base path: unix socket paths must stay under 108 bytes.
BASE="$(mktemp -d /tmp/cyrfx.XXXXXX)"
chmod 755 "$BASE"
PIDFILE="$BASE/run/master.pid"

stop_master() {
  [[ -f $PIDFILE ]] || return 0
  local pid
  pid="$(cat "$PIDFILE")"
  kill -TERM "$pid" 2>/dev/null || true
  # pid 1 here reaps late: a zombie counts as stopped.
  for _ in $(seq 1 100); do
    [[ -d /proc/$pid ]] || break
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
    sleep 0.1
  done
  rm -f "$PIDFILE"
}
cleanup() { stop_master; rm -rf "$BASE"; }
trap cleanup EXIT

mkdir -p "$BASE"/{etc,conf/db,conf/socket,conf/log,conf/msg,conf/user,conf/quota,spool,sieve}
mkdir -p "$BASE"/{run/proc,run/lock,log}
chown -R cyrus:mail "$BASE"/{conf,spool,sieve,run,log}

read -r IMAP_PORT SIEVE_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)

CONF="$BASE/etc/imapd.conf"
cat >"$CONF" <<EOF
configdirectory: $BASE/conf
defaultpartition: default
partition-default: $BASE/spool
sievedir: $BASE/sieve
proc_path: $BASE/run/proc
mboxname_lockpath: $BASE/run/lock
lmtpsocket: $BASE/run/lmtp
idlesocket: $BASE/run/idle
notifysocket: $BASE/run/notify
servername: cyrusfixture
admins: admin
allowplaintext: yes
sasl_mech_list: PLAIN LOGIN
sasl_pwcheck_method: alwaystrue
virtdomains: off
altnamespace: no
unixhierarchysep: no
hashimapspool: yes
mailbox_legacy_dirs: no
delete_mode: delayed
expunge_mode: delayed
sendmail: /bin/true
syslog_prefix: cyrsync-fixture
EOF

# cyrmaster does not pass -C on to its children: every cmd needs its own.
cat >"$BASE/etc/cyrus.conf" <<EOF
START {
  recover cmd="ctl_cyrusdb -C $CONF -r"
}
SERVICES {
  imap     cmd="imapd -C $CONF"     listen="127.0.0.1:$IMAP_PORT" prefork=0
  lmtpunix cmd="lmtpd -C $CONF"     listen="$BASE/run/lmtp"       prefork=0
  sieve    cmd="timsieved -C $CONF" listen="127.0.0.1:$SIEVE_PORT" prefork=0
}
EVENTS {
}
EOF

"$MASTER" -C "$CONF" -M "$BASE/etc/cyrus.conf" -p "$PIDFILE" -d -L "$BASE/log/master.log"

mkdir -p "$OUT"
python3 - "$BASE" "$IMAP_PORT" "$OUT" <<'EOF'
import email.utils, hashlib, imaplib, os, re, smtplib, socket, sys, time

base, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lmtp_path = os.path.join(base, "run/lmtp")

def wait_ready():
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"* OK") and os.path.exists(lmtp_path):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("cyrus did not come up")

def ok(resp):
    typ, data = resp
    if typ != "OK":
        sys.exit(f"IMAP command failed: {typ} {data}")
    return data

wait_ready()
admin = imaplib.IMAP4("127.0.0.1", port)
ok(admin.login("admin", "x"))
ok(admin.create("user.alice"))
admin.logout()

lmtp = smtplib.LMTP(lmtp_path)
for i in range(1, 5):
    msg = (f"From: Bob <bob@example.com>\r\nTo: alice@cyrusfixture\r\n"
           f"Subject: fixture message {i}\r\nMessage-ID: <fixture-{i}-{time.time_ns()}@example.com>\r\n"
           f"Date: {email.utils.formatdate()}\r\n\r\nBody of message {i}.\r\n")
    lmtp.sendmail("bob@example.com", ["alice"], msg.encode())
lmtp.quit()

imap = imaplib.IMAP4("127.0.0.1", port)
ok(imap.login("alice", "x"))
ok(imap.select("INBOX"))
ok(imap.uid("STORE", "1", "+FLAGS", r"(\Seen $Label1)"))
ok(imap.uid("STORE", "2", "+FLAGS", r"(\Flagged \Answered)"))
ok(imap.uid("STORE", "3", "+FLAGS", r"(\Deleted)"))
ok(imap.expunge())
ok(imap.uid("STORE", "4", "+FLAGS", r"($Label2 \Draft)"))
fetched = ok(imap.uid("FETCH", "1:*", "(UID FLAGS MODSEQ INTERNALDATE RFC822.SIZE)"))
status = ok(imap.status("INBOX", "(UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)"))[0].decode()
imap.logout()

def num(key, text):
    return int(re.search(key + r" \(?(\d+)", text).group(1))

visible = {}
for line in fetched:
    line = line.decode() if isinstance(line, bytes) else line[0].decode()
    uid = num("UID", line)
    # \Recent is per session, not stored in the index.
    flags = [f for f in re.search(r"FLAGS \(([^)]*)\)", line).group(1).split() if f != "\\Recent"]
    idate = re.search(r'INTERNALDATE "([^"]+)"', line).group(1)
    epoch = int(time.mktime(imaplib.Internaldate2tuple(f'INTERNALDATE "{idate}"'.encode())))
    visible[uid] = (flags, num("MODSEQ", line), epoch)
with open(os.path.join(out, "imap_status.txt"), "w") as f:
    f.write(status + "\n")
with open(os.path.join(out, "imap_fetch.txt"), "w") as f:
    for uid, (flags, modseq, epoch) in sorted(visible.items()):
        f.write(f"{uid} {modseq} {epoch} {' '.join(flags)}\n")
EOF

stop_master

# Find alice's INBOX by the name in its (3.6 dlist) cyrus.header.
MBOX=""
while IFS= read -r -d '' hdr; do
  if grep -aq ' N user.alice ' "$hdr"; then MBOX="$(dirname "$hdr")"; fi
done < <(find "$BASE/spool" -name cyrus.header -print0)
[[ -n $MBOX ]] || { echo "alice's mailbox not found" >&2; exit 1; }

cp "$MBOX/cyrus.index" "$MBOX/cyrus.header" "$OUT/"
chown "$(stat -c %u:%g "$HERE")" "$OUT"/* "$OUT"
chmod 644 "$OUT"/*

# expected.txt: one fact per line. Sources: the server's STATUS/FETCH answers (imap_*.txt,
# consumed here), the message files, and the package version.
python3 - "$OUT" "$MBOX" "$(dpkg-query -W -f '${Version}' cyrus-imapd)" <<'EOF'
import hashlib, os, re, sys
out, mbox, version = sys.argv[1:4]
status = open(os.path.join(out, "imap_status.txt")).read()
def st(key):
    return int(re.search(key + r" (\d+)", status).group(1))
rows = {}
for line in open(os.path.join(out, "imap_fetch.txt")):
    uid, modseq, epoch, *flags = line.split()
    rows[int(uid)] = (modseq, epoch, flags)
lines = [f"# Generated by make_cyrus_fixtures.sh from cyrus-imapd {version}; do not edit.",
         "# record: uid size sha1-of-file modseq|- internaldate|- flags... "
         "(EXPUNGED = expunged, not visible over IMAP)",
         "minor_version 17",
         f"uidvalidity {st('UIDVALIDITY')}",
         f"last_uid {st('UIDNEXT') - 1}",
         f"exists {st('MESSAGES')}",
         f"highestmodseq {st('HIGHESTMODSEQ')}",
         "mailbox_name user.alice",
         f"uniqueid {os.path.basename(mbox)}"]
uids = sorted(int(n[:-1]) for n in os.listdir(mbox) if re.fullmatch(r"\d+\.", n))
for uid in uids:
    data = open(os.path.join(mbox, f"{uid}."), "rb").read()
    modseq, epoch, flags = rows.get(uid, ("-", "-", ["EXPUNGED"]))
    lines.append(f"record {uid} {len(data)} {hashlib.sha1(data).hexdigest()} {modseq} {epoch} "
                 + " ".join(flags))
lines.append(f"num_records {len(uids)}")
with open(os.path.join(out, "expected.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
for n in ("imap_status.txt", "imap_fetch.txt"):
    os.remove(os.path.join(out, n))
EOF

chmod 644 "$OUT/expected.txt"
echo "fixtures written to $OUT:"
ls -l "$OUT"
cat "$OUT/expected.txt"
