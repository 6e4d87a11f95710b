#!/usr/bin/env bash
# Regenerates tests/data/mboxlist-3.6.1-{uuid,legacy,vdom}/ from a real Cyrus IMAP 3.6.1
# (Debian 12 cyrus-imapd). For each variant it starts a private throwaway instance (own dirs,
# ports, pid file; see doc real-cyrus-lab.md §0-§2), creates users and folders over IMAP
# (nested folder, renamed folder -> tombstone, deleted folder -> DELETED.* + tombstone), stops
# it and saves:
#   imapd.conf        the config used (paths rewritten to /srv/cyrfx)
#   mailboxes.db      the twoskip mailboxes.db, byte for byte
#   dbtool-show.txt   `cyr_dbtool <db> twoskip show` (raw key TAB value lines)
#   ctl_mboxlist.json `ctl_mboxlist -d`
#   mbpath.txt        per mailbox: a line "== <name>" then the output of `mbpath -j <name>`
#   locks.txt         every file under mboxname_lockpath (relative), after the IMAP session
# and tests/data/cyrusdb-3.6.1/: the same key/value operations written by cyr_dbtool into a
# twoskip, a skiplist and a flat file (`<name>.db` + `<name>.show.txt`), plus a twoskip file left
# mid-commit by `cyr_dbtool ... damage` (its committed view equals twoskip.show.txt).
# Usage (root): tests/data/make_mboxlist_fixtures.sh [outdir]   (default: next to this script)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$HERE}"
BIN=/usr/lib/cyrus/bin
FIXROOT=/srv/cyrfx

[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
[ -x /usr/sbin/cyrmaster ] || { echo "cyrus-imapd not installed (deploy/install-deps.sh)" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

make_dirs() {  # BASE
  local b="$1" d
  chmod 755 "$b"
  mkdir -p "$b/etc"
  for d in conf conf/db conf/socket conf/log conf/msg conf/user conf/quota spool meta archive \
           sieve run run/proc run/lock log; do
    mkdir -p "$b/$d"
    chown cyrus:mail "$b/$d"
  done
}

write_imapd_conf() {  # BASE VARIANT
  local b="$1" v="$2"
  cat > "$b/etc/imapd.conf" <<EOF
configdirectory: $b/conf
defaultpartition: default
partition-default: $b/spool
sievedir: $b/sieve
proc_path: $b/run/proc
mboxname_lockpath: $b/run/lock
lmtpsocket: $b/run/lmtp
idlesocket: $b/run/idle
notifysocket: $b/run/notify
servername: cyrfx
admins: admin
allowplaintext: yes
sasl_mech_list: PLAIN LOGIN
sasl_pwcheck_method: alwaystrue
altnamespace: no
hashimapspool: yes
delete_mode: delayed
expunge_mode: delayed
sendmail: /bin/true
syslog_prefix: cyrfx-$v
EOF
  case "$v" in
    uuid)
      printf 'unixhierarchysep: no\nvirtdomains: off\nmailbox_legacy_dirs: no\n' >> "$b/etc/imapd.conf" ;;
    legacy)
      # '/' separator so that a '.' inside a folder or user name becomes '^' internally; a
      # metapartition for some files and an archive partition, to check mbpath's M and A paths.
      cat >> "$b/etc/imapd.conf" <<EOF
unixhierarchysep: yes
virtdomains: off
mailbox_legacy_dirs: yes
metapartition-default: $b/meta
metapartition_files: header index annotations
archive_enabled: yes
archivepartition-default: $b/archive
EOF
      ;;
    vdom)
      printf 'unixhierarchysep: no\nvirtdomains: userid\nmailbox_legacy_dirs: yes\nfulldirhash: yes\n' \
        >> "$b/etc/imapd.conf" ;;
  esac
}

write_cyrus_conf() {  # BASE PORT
  local b="$1" port="$2" c="$1/etc/imapd.conf"
  cat > "$b/etc/cyrus.conf" <<EOF
START {
  recover cmd="ctl_cyrusdb -C $c -r"
}
SERVICES {
  imap cmd="imapd -C $c" listen="127.0.0.1:$port" prefork=0
}
EVENTS {
}
EOF
}

start_master() {  # BASE PORT
  local b="$1" port="$2" i
  /usr/sbin/cyrmaster -C "$b/etc/imapd.conf" -M "$b/etc/cyrus.conf" -p "$b/run/master.pid" \
    -d -L "$b/log/master.log"
  for i in $(seq 1 100); do
    if python3 - "$port" <<'EOF' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
sys.exit(0 if s.recv(100).startswith(b"* OK") else 1)
EOF
    sleep 0.1
  done
  echo "cyrus instance in $b did not start" >&2
  return 1
}

stop_master() {  # BASE
  local b="$1" pid i st
  pid="$(cat "$b/run/master.pid" 2>/dev/null || true)"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    [ -e "/proc/$pid" ] || return 0
    st="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)"
    [ "$st" = Z ] && return 0
    sleep 0.05
  done
}

# IMAP actions. Prints the admin-namespace names to feed to mbpath, one per line.
populate() {  # PORT VARIANT
  python3 - "$1" "$2" <<'EOF'
import imaplib, sys, time
port, variant = int(sys.argv[1]), sys.argv[2]
sep = "/" if variant == "legacy" else "."
dom = "@example.com" if variant == "vdom" else ""

def conn(user):
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(user, "x")
    return c

def ok(res, what):
    if res[0] != "OK":
        raise SystemExit("%s failed: %r" % (what, res))

def q(name):
    return '"%s"' % name

def adm_name(user, *folders):
    # admin's view: user.alice.Sent / user/alice/Sent / user.alice.Sent@example.com
    local, _, d = user.partition("@")
    n = sep.join(("user", local) + folders)
    return n + ("@" + d if d else "")

users = ["alice" + dom, "bob" + dom]
if variant == "legacy":
    users.append("john.doe")
adm = conn("admin")
names = []
for u in users:
    ok(adm.create(q(adm_name(u))), "create " + u)
    names.append(adm_name(u))
for f in (("Sent",), ("Archive",), ("Archive", "2023"), ("Trash",)):
    ok(adm.create(q(adm_name(users[0], *f))), "create folder")
    names.append(adm_name(users[0], *f))
if variant == "legacy":
    ok(adm.create(q(adm_name(users[0], "v1.2"))), "create dotted")
    names.append(adm_name(users[0], "v1.2"))
    ok(adm.create(q(adm_name("john.doe", "Notes"))), "create john folder")
    names.append(adm_name("john.doe", "Notes"))
shared = "shared" + sep + "news" + ("@example.com" if dom else "")
ok(adm.create(q(shared)), "create shared")
names.append(shared)
ok(adm.create(q(adm_name(users[1], "Old"))), "create Old")
ok(adm.rename(q(adm_name(users[1], "Old")), q(adm_name(users[1], "New"))), "rename")
names.append(adm_name(users[1], "New"))
ok(adm.create(q(adm_name(users[1], "Temp"))), "create Temp")
adm.logout()

# Owners open their folders (takes name locks) and bob deletes Temp (delayed delete).
inbox_sep = "/" if variant == "legacy" else "."
for u in users:
    c = conn(u)
    typ, data = c.list()
    for line in data:
        mbox = line.decode().rsplit(' ', 1)[-1].strip('"')
        c.select(q(mbox))
        c.close()
    if u == users[1]:
        ok(c.delete(q("INBOX" + inbox_sep + "Temp")), "delete Temp")
    c.logout()

adm = conn("admin")
typ, data = adm.list('""', '"*"')
for line in data:
    mbox = line.decode().rsplit(' ', 1)[-1].strip('"')
    if mbox.startswith("DELETED"):
        names.append(mbox)
adm.logout()
print("\n".join(names))
EOF
}

save_outputs() {  # BASE VARIANT NAMESFILE
  local b="$1" v="$2" names="$3" dst="$OUT/mboxlist-3.6.1-$2" c="$1/etc/imapd.conf" n
  rm -rf "$dst"
  mkdir -p "$dst"
  cp "$b/conf/mailboxes.db" "$dst/mailboxes.db"
  "$BIN/cyr_dbtool" -C "$c" "$b/conf/mailboxes.db" twoskip show > "$dst/dbtool-show.txt"
  "$BIN/ctl_mboxlist" -C "$c" -d > "$dst/ctl_mboxlist.json"
  : > "$dst/mbpath.txt"
  while IFS= read -r n; do
    printf '== %s\n' "$n" >> "$dst/mbpath.txt"
    "$BIN/mbpath" -C "$c" -j "$n" >> "$dst/mbpath.txt"
  done < "$names"
  (cd "$b/run/lock" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) > "$dst/locks.txt"
  cp "$c" "$dst/imapd.conf"
  chmod 644 "$dst"/*
  sed -i "s|$b|$FIXROOT|g" "$dst/imapd.conf" "$dst/mbpath.txt" "$dst/ctl_mboxlist.json"
}

run_variant() {  # VARIANT
  local v="$1" b port
  b="$(mktemp -d /tmp/cyrfx-XXXXXX)"
  port="$(free_port)"
  make_dirs "$b"
  write_imapd_conf "$b" "$v"
  write_cyrus_conf "$b" "$port"
  trap "stop_master '$b'; rm -rf '$b'" EXIT
  start_master "$b" "$port"
  populate "$port" "$v" > "$b/names.txt"
  stop_master "$b"
  save_outputs "$b" "$v" "$b/names.txt"
  rm -rf "$b"
  trap - EXIT
  echo "wrote $OUT/mboxlist-3.6.1-$v"
}

# Key/value operations for the cyrusdb fixtures: many keys so that twoskip/skiplist records get
# several levels, some replaced and some deleted (DELETE records, BLANK padding).
dbtool_ops() {  # DBFILE BACKEND CONF
  local f="$1" be="$2" c="$3" i
  for i in $(seq 1 60); do
    "$BIN/cyr_dbtool" -C "$c" "$f" "$be" set "key$i" "value $i"
  done
  "$BIN/cyr_dbtool" -C "$c" "$f" "$be" set $'user\x1fbob\x1fSent' '%(T e P default)'
  "$BIN/cyr_dbtool" -C "$c" "$f" "$be" set 'tab' $'a\tb'
  "$BIN/cyr_dbtool" -C "$c" "$f" "$be" set 'ff' $'x\xffy'
  "$BIN/cyr_dbtool" -C "$c" "$f" "$be" set 'empty' ''
  for i in $(seq 1 60 | awk '$1 % 3 == 0'); do
    "$BIN/cyr_dbtool" -C "$c" "$f" "$be" delete "key$i"
  done
  for i in $(seq 1 60 | awk '$1 % 5 == 0'); do
    "$BIN/cyr_dbtool" -C "$c" "$f" "$be" set "key$i" "replaced $i"
  done
}

make_cyrusdb_fixtures() {
  local b dst="$OUT/cyrusdb-3.6.1" be
  b="$(mktemp -d /tmp/cyrfx-XXXXXX)"
  chmod 755 "$b"
  mkdir -p "$b/conf/db"
  printf 'configdirectory: %s/conf\n' "$b" > "$b/imapd.conf"
  touch "$b/empty.flat"
  chown -R cyrus:mail "$b"
  rm -rf "$dst"
  mkdir -p "$dst"
  for be in twoskip skiplist flat; do
    if [ "$be" = flat ]; then
      cp "$b/empty.flat" "$b/$be.db"
    else
      "$BIN/cvt_cyrusdb" -C "$b/imapd.conf" "$b/empty.flat" flat "$b/$be.db" "$be" > /dev/null
    fi
    chown cyrus:mail "$b/$be.db"
    dbtool_ops "$b/$be.db" "$be" "$b/imapd.conf"
    cp "$b/$be.db" "$dst/$be.db"
    "$BIN/cyr_dbtool" -C "$b/imapd.conf" "$b/$be.db" "$be" show > "$dst/$be.show.txt"
  done
  # 'damage' starts a commit and aborts half-way: DIRTY header, records past current_size.
  "$BIN/cyr_dbtool" -C "$b/imapd.conf" "$b/twoskip.db" twoskip damage > /dev/null 2>&1 || true
  cp "$b/twoskip.db" "$dst/twoskip-damaged.db"
  chmod 644 "$dst"/*
  rm -rf "$b"
  echo "wrote $dst"
}

for v in uuid legacy vdom; do
  run_variant "$v"
done
make_cyrusdb_fixtures
