#!/usr/bin/env python3
"""Real-Cyrus test harness for cyrsync (Cyrus IMAP 3.6.1, Debian packages).

Runs private Cyrus instances (master started as root, children run as user ``cyrus``) below a
base directory, fills them with deterministic mail, mutates them, and captures everything a user
or an admin can observe over IMAP and ManageSieve so two servers can be compared
(``capture_state`` + ``diff_states``).  Background for the choices made here: the project's
reference notes ``real-cyrus-lab.md``.

Determinism: populate()/mutate() with the same seed issue the same operations; message bodies
still differ between instances (lmtpd adds Received/X-Cyrus-Session-Id headers with times),
so compare a server with a *copy* of itself, not two independently populated servers.
Known Cyrus 3.6.1 quirk seen here: with mailbox_legacy_dirs: yes, in a multi-recipient LMTP
transaction a recipient without a Sieve script gets the previous recipient's (alice's) script
applied, so folder contents differ between the two layouts for the same seed.

Python 3 standard library only.  Importable; also a small CLI:

    python3 cyruslab.py {setup,start,stop,status,populate,mutate,capture,reconstruct} BASE NAME
                        [--legacy] [--seed N] [--messages N]

Layout of an instance (BASE):
    etc/imapd.conf etc/cyrus.conf etc/cyruslab.json   configuration (not copied to a replica)
    conf/ spool/ sieve/                                 the data a replica needs
    run/ (proc, lock, master.pid, lmtp socket ...)      transient, never copied
    log/master.log                                      master's stdout/stderr
"""

import base64
import datetime
import grp
import hashlib
import imaplib
import json
import os
import pwd
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

CYRMASTER = "/usr/sbin/cyrmaster"
CYRUS_BIN = "/usr/lib/cyrus/bin"
CYRUS_USER = "cyrus"
CYRUS_GROUP = "mail"
PASSWORD = "secret"          # sasl_pwcheck_method: alwaystrue accepts anything
ADMIN = "admin"
SEP = "."                    # unixhierarchysep: no

# Commands imaplib does not know (RFC 5464 METADATA, RFC 7162 bits).
imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))


# --------------------------------------------------------------------------------------------
# environment

def require_environment() -> None:
    """Exit 77 (skip) unless we are root and Cyrus is installed; under CI=true exit 1 instead."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root (cyrmaster must be started as root)")
    if not os.path.exists(CYRMASTER):
        problems.append(f"{CYRMASTER} not found (install cyrus-imapd, see deploy/install-deps.sh)")
    else:
        try:
            pwd.getpwnam(CYRUS_USER)
            grp.getgrnam(CYRUS_GROUP)
        except KeyError:
            problems.append(f"system user {CYRUS_USER}:{CYRUS_GROUP} missing")
    if not problems:
        return
    why = "; ".join(problems)
    if os.environ.get("CI") == "true":
        print(f"FAIL: real-Cyrus integration test cannot run under CI: {why}", flush=True)
        sys.exit(1)
    bar = "!" * 78
    print(f"{bar}\n!! SKIP: real-Cyrus integration test skipped: {why}\n{bar}", flush=True)
    sys.exit(77)


_handed_out_ports = set()
_ports_lock = threading.Lock()


def _free_port() -> int:
    with _ports_lock:
        return _free_port_locked()


def _free_port_locked() -> int:
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _handed_out_ports:
            _handed_out_ports.add(port)
            return port
    raise RuntimeError("could not find a free TCP port")


def _port_is_bindable(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _proc_state(pid: int):
    """Process state letter from /proc/<pid>/stat, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) S ppid pgrp ..." ; comm may contain spaces/parens
    rest = data[data.rfind(")") + 2:].split()
    return rest[0] if rest else None


def _proc_pgrp(pid: int):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return int(rest[2]) if len(rest) > 2 else None


def _live_members_of_group(pgrp: int):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        p = int(d)
        if _proc_pgrp(p) == pgrp and _proc_state(p) not in (None, "Z", "X"):
            pids.append(p)
    return pids


# --------------------------------------------------------------------------------------------
# small protocol helpers

def q(s: str) -> str:
    """IMAP / ManageSieve quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(typ_data, what=""):
    typ, data = typ_data
    if typ != "OK":
        raise RuntimeError(f"IMAP {what} failed: {typ} {data!r}")
    return data


def _tokenize_imap(buf: bytes):
    """Tokenize one IMAP response line (literals already spliced in as bytes objects via
    _flatten).  Returns nested lists; atoms/strings as str, NIL as None."""
    pos = 0
    n = len(buf)

    def parse_list():
        nonlocal pos
        items = []
        while pos < n:
            c = buf[pos:pos + 1]
            if c == b" ":
                pos += 1
            elif c == b"(":
                pos += 1
                items.append(parse_list())
            elif c == b")":
                pos += 1
                return items
            elif c == b'"':
                pos += 1
                out = bytearray()
                while pos < n and buf[pos:pos + 1] != b'"':
                    if buf[pos:pos + 1] == b"\\":
                        pos += 1
                    out += buf[pos:pos + 1]
                    pos += 1
                pos += 1
                items.append(out.decode("utf-8", "replace"))
            elif c == b"\x00":   # literal marker inserted by _flatten: \0<len>\0<data>
                end = buf.index(b"\x00", pos + 1)
                ln = int(buf[pos + 1:end])
                items.append(buf[end + 1:end + 1 + ln].decode("utf-8", "replace"))
                pos = end + 1 + ln
            else:
                start = pos
                depth = 0
                while pos < n:
                    ch = buf[pos:pos + 1]
                    if ch == b"[":
                        depth += 1
                    elif ch == b"]":
                        depth -= 1
                    elif depth <= 0 and ch in (b" ", b"(", b")"):
                        break
                    pos += 1
                atom = buf[start:pos].decode("utf-8", "replace")
                items.append(None if atom.upper() == "NIL" else atom)
        return items

    return parse_list()


def _flatten(item) -> bytes:
    """imaplib gives literal-bearing responses as (prefix_with_{n}, literal) tuples; turn one
    untagged response into a single byte string with in-band literal markers."""
    if isinstance(item, tuple):
        prefix, lit = item[0], item[1]
        prefix = re.sub(rb"\{\d+\+?\}$", b"", prefix)
        rest = b"".join(x for x in item[2:] if isinstance(x, bytes))
        return prefix + b"\x00" + str(len(lit)).encode() + b"\x00" + lit + rest
    return item or b""


def _group_untagged(data):
    """imaplib returns for literal-bearing responses [(pre, lit), b')' , ...]; join them."""
    out = []
    cur = None
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            chunk = _flatten(item)
            if cur is None:
                cur = chunk
            else:
                cur += chunk
        else:
            if cur is not None:
                cur += item
                out.append(cur)
                cur = None
            else:
                out.append(item)
    if cur is not None:
        out.append(cur)
    return out


def parse_list_response(data):
    """LIST/LSUB untagged data -> sorted list of [flags(list), delimiter, name]."""
    out = []
    for line in _group_untagged(data):
        toks = _tokenize_imap(line)
        if len(toks) < 3:
            continue
        flags = sorted(toks[0]) if isinstance(toks[0], list) else []
        out.append([flags, toks[1], toks[2]])
    out.sort(key=lambda x: x[2])
    return out


class LMTPClient:
    """Minimal LMTP client on a unix socket.  Unlike smtplib.LMTP it reads one reply per
    accepted RCPT after the data, so multi-recipient transactions stay in sync."""

    def __init__(self, path: str, timeout: float = 30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.f = self.sock.makefile("rb")
        code, text = self._reply()
        if code != 220:
            raise RuntimeError(f"LMTP greeting: {code} {text}")
        self._cmd("LHLO cyruslab.test", 250)

    def _reply(self):
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("LMTP connection closed")
            line = line.rstrip(b"\r\n").decode("utf-8", "replace")
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), "\n".join(lines)

    def _send(self, s: bytes):
        self.sock.sendall(s)

    def _cmd(self, line: str, expect=None):
        self._send(line.encode("utf-8") + b"\r\n")
        code, text = self._reply()
        if expect is not None and code != expect:
            raise RuntimeError(f"LMTP {line!r}: {code} {text}")
        return code, text

    def deliver(self, sender: str, rcpts, msg: bytes) -> dict:
        """Returns {rcpt: (code, text)}; raises on protocol errors."""
        self._cmd(f"MAIL FROM:<{sender}>", 250)
        result = {}
        accepted = []
        for r in rcpts:
            code, text = self._cmd(f"RCPT TO:<{r}>")
            result[r] = (code, text)
            if 200 <= code < 300:
                accepted.append(r)
        if not accepted:
            self._cmd("RSET", 250)
            return result
        self._cmd("DATA", 354)
        body = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        body = re.sub(rb"(?m)^\.", b"..", body)
        self._send(body + b".\r\n")
        for r in accepted:
            result[r] = self._reply()
        return result

    def close(self):
        try:
            self._send(b"QUIT\r\n")
            self._reply()
        except Exception:
            pass
        try:
            self.f.close()
        finally:
            self.sock.close()


class ManageSieve:
    """Minimal ManageSieve (RFC 5804) client with SASL PLAIN."""

    def __init__(self, host: str, port: int, user: str, password: str = PASSWORD,
                 timeout: float = 30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        st, _, lines = self._response()
        if st != "OK":
            raise RuntimeError(f"ManageSieve greeting: {st} {lines}")
        creds = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        self.command(f'AUTHENTICATE "PLAIN" "{creds}"')

    def _read_line(self) -> bytes:
        line = self.f.readline()
        if not line:
            raise RuntimeError("ManageSieve connection closed")
        return line.rstrip(b"\r\n")

    def _logical_line(self):
        """One response line as a list of tokens (str); literals resolved."""
        toks = []
        line = self._read_line()
        while True:
            m = re.search(rb"\{(\d+)\+?\}$", line)
            if m:
                toks.extend(self._split(line[:m.start()]))
                lit = self.f.read(int(m.group(1)))
                toks.append(lit.decode("utf-8", "replace"))
                line = self._read_line()
                if not line:
                    return toks
                continue
            toks.extend(self._split(line))
            return toks

    @staticmethod
    def _split(b: bytes):
        toks = []
        i, n = 0, len(b)
        while i < n:
            c = b[i:i + 1]
            if c == b" ":
                i += 1
            elif c == b'"':
                i += 1
                out = bytearray()
                while i < n and b[i:i + 1] != b'"':
                    if b[i:i + 1] == b"\\":
                        i += 1
                    out += b[i:i + 1]
                    i += 1
                i += 1
                toks.append(out.decode("utf-8", "replace"))
            elif c == b"(":
                # response code, keep raw up to ')'
                j = b.find(b")", i)
                j = n - 1 if j < 0 else j
                toks.append(b[i:j + 1].decode("utf-8", "replace"))
                i = j + 1
            else:
                j = i
                while j < n and b[j:j + 1] != b" ":
                    j += 1
                toks.append(b[i:j].decode("utf-8", "replace"))
                i = j
        return toks

    def _response(self):
        lines = []
        while True:
            toks = self._logical_line()
            if toks and toks[0].upper() in ("OK", "NO", "BYE"):
                return toks[0].upper(), toks[1:], lines
            lines.append(toks)

    def command(self, line: str, literal: str = None, ok=True):
        data = line.encode("utf-8")
        if literal is not None:
            lit = literal.encode("utf-8")
            data += b" {%d+}\r\n" % len(lit) + lit
        self.sock.sendall(data + b"\r\n")
        st, rest, lines = self._response()
        if ok and st != "OK":
            raise RuntimeError(f"ManageSieve {line.split()[0]}: {st} {rest}")
        return st, rest, lines

    def listscripts(self):
        _, _, lines = self.command("LISTSCRIPTS")
        out = []
        for toks in lines:
            if toks:
                out.append([toks[0], len(toks) > 1 and toks[1].upper() == "ACTIVE"])
        return sorted(out)

    def getscript(self, name: str) -> str:
        _, _, lines = self.command(f"GETSCRIPT {q(name)}")
        return "".join(t for toks in lines for t in toks)

    def putscript(self, name: str, script: str):
        self.command(f"PUTSCRIPT {q(name)}", literal=script)

    def setactive(self, name: str):
        self.command(f"SETACTIVE {q(name)}")

    def close(self):
        try:
            self.command("LOGOUT", ok=False)
        except Exception:
            pass
        try:
            self.f.close()
        finally:
            self.sock.close()


# --------------------------------------------------------------------------------------------
# the instance

class CyrusInstance:
    def __init__(self, base: str, name: str, legacy_dirs: bool = False):
        self.base = os.path.abspath(base)
        self.name = name
        self.legacy_dirs = legacy_dirs
        self.etc = os.path.join(self.base, "etc")
        self.conf_path = os.path.join(self.etc, "imapd.conf")
        self.cyrus_conf_path = os.path.join(self.etc, "cyrus.conf")
        self.meta_path = os.path.join(self.etc, "cyruslab.json")
        self.confdir = os.path.join(self.base, "conf")
        self.spool = os.path.join(self.base, "spool")
        self.sievedir = os.path.join(self.base, "sieve")
        self.run = os.path.join(self.base, "run")
        self.logdir = os.path.join(self.base, "log")
        self.master_log = os.path.join(self.logdir, "master.log")
        self.lmtp_socket = os.path.join(self.run, "lmtp")
        self.imap_port = None
        self.sieve_port = None
        self._load_meta()

    def __repr__(self):
        return f"CyrusInstance({self.base!r}, {self.name!r}, legacy_dirs={self.legacy_dirs})"

    # -- configuration ---------------------------------------------------------------------
    def _load_meta(self):
        try:
            with open(self.meta_path) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return
        self.imap_port = meta.get("imap_port")
        self.sieve_port = meta.get("sieve_port")

    def pidfile(self) -> str:
        return os.path.join(self.run, "master.pid")

    def setup(self) -> None:
        """Create the directory tree and configuration.  Idempotent: existing data is kept, ports
        already assigned to this base are reused (unless the instance is stopped and the port
        was taken by someone else meanwhile)."""
        if len(self.lmtp_socket.encode()) >= 100:
            raise ValueError(f"base path too long for unix sockets: {self.lmtp_socket}")
        uid = pwd.getpwnam(CYRUS_USER).pw_uid
        gid = grp.getgrnam(CYRUS_GROUP).gr_gid
        os.makedirs(self.etc, exist_ok=True)
        # every directory up to / must be traversable by cyrus
        d = self.base
        while True:
            st = os.stat(d)
            if st.st_mode & 0o005 != 0o005:
                os.chmod(d, st.st_mode | 0o005)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
        os.chmod(self.etc, 0o755)
        owned = [self.confdir] + [os.path.join(self.confdir, x) for x in
                                  ("db", "socket", "log", "msg", "user", "quota")]
        owned += [self.spool, self.sievedir, self.run, os.path.join(self.run, "proc"),
                  os.path.join(self.run, "lock"), self.logdir]
        for p in owned:
            os.makedirs(p, exist_ok=True)
            os.chown(p, uid, gid)
        os.chmod(self.confdir, 0o750)

        running = self.is_running()
        if self.imap_port is None or (not running and not _port_is_bindable(self.imap_port)):
            self.imap_port = _free_port()
        if self.sieve_port is None or (not running and not _port_is_bindable(self.sieve_port)):
            self.sieve_port = _free_port()
        with _ports_lock:
            _handed_out_ports.update((self.imap_port, self.sieve_port))

        C = self.conf_path
        imapd = f"""# generated by cyruslab.py for instance {self.name}
configdirectory: {self.confdir}
defaultpartition: default
partition-default: {self.spool}
sievedir: {self.sievedir}
proc_path: {self.run}/proc
mboxname_lockpath: {self.run}/lock
lmtpsocket: {self.lmtp_socket}
idlesocket: {self.run}/idle
notifysocket: {self.run}/notify
servername: cyruslab
admins: {ADMIN}
allowplaintext: yes
sasl_mech_list: PLAIN LOGIN
sasl_pwcheck_method: alwaystrue
virtdomains: off
altnamespace: no
unixhierarchysep: no
hashimapspool: yes
mailbox_legacy_dirs: {"yes" if self.legacy_dirs else "no"}
delete_mode: delayed
expunge_mode: delayed
singleinstancestore: yes
lmtp_downcase_rcpt: yes
sendmail: /bin/true
syslog_prefix: cyruslab-{self.name}
"""
        cyrus = f"""# generated by cyruslab.py for instance {self.name}
START {{
  recover     cmd="ctl_cyrusdb -C {C} -r"
}}
SERVICES {{
  imap        cmd="imapd -C {C}"     listen="127.0.0.1:{self.imap_port}" prefork=0
  lmtpunix    cmd="lmtpd -C {C}"     listen="{self.lmtp_socket}" prefork=0
  sieve       cmd="timsieved -C {C}" listen="127.0.0.1:{self.sieve_port}" prefork=0
}}
EVENTS {{
  checkpoint  cmd="ctl_cyrusdb -C {C} -c" period=30
}}
"""
        for path, text in ((self.conf_path, imapd), (self.cyrus_conf_path, cyrus)):
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o644)
        with open(self.meta_path, "w") as f:
            json.dump({"name": self.name, "imap_port": self.imap_port,
                       "sieve_port": self.sieve_port, "legacy_dirs": self.legacy_dirs}, f)

    # -- process control -------------------------------------------------------------------
    def _read_pid(self):
        try:
            with open(self.pidfile()) as f:
                return int(f.read().strip() or "0") or None
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self._read_pid()
        if not pid:
            return False
        if _proc_state(pid) in (None, "Z", "X"):
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            return False
        return self.conf_path.encode() in cmd

    def _master_log_text(self) -> str:
        try:
            with open(self.master_log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return "(no master log)"

    def start(self, timeout: float = 20.0) -> None:
        if self.is_running():
            return
        if self.imap_port is None:
            raise RuntimeError(f"{self}: setup() first")
        for stale in (self.pidfile(), self.lmtp_socket):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        cmd = [CYRMASTER, "-C", self.conf_path, "-M", self.cyrus_conf_path,
               "-p", self.pidfile(), "-d", "-L", self.master_log]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{self}: cyrmaster exited {r.returncode}: {r.stdout}{r.stderr}\n"
                               f"master log:\n{self._master_log_text()}")
        deadline = time.monotonic() + timeout
        last = "not tried"
        while time.monotonic() < deadline:
            if os.path.exists(self.lmtp_socket) and self._greeting_ok():
                return
            last = "no IMAP greeting / LMTP socket yet"
            if self._read_pid() and not self.is_running():
                last = "master process died"
                break
            time.sleep(0.02)
        raise RuntimeError(f"{self}: did not come up ({last}).\nmaster log:\n"
                           f"{self._master_log_text()}")

    def _greeting_ok(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.imap_port), timeout=2) as s:
                data = s.recv(200)
                ok = data.startswith(b"* OK")
                if ok:
                    s.sendall(b"x LOGOUT\r\n")
                return ok
        except OSError:
            return False

    def stop(self, timeout: float = 20.0) -> None:
        pid = self._read_pid()
        if not pid or not self.is_running():
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _proc_state(pid) in (None, "Z", "X"):
                break
            time.sleep(0.01)
        else:
            os.killpg(pid, signal.SIGKILL)   # its own process group (session leader)
        # the master waits for its children, but make sure nothing of its group is left
        # touching the data before callers copy it.
        deadline = time.monotonic() + timeout
        while _live_members_of_group(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        for stale in (self.pidfile(), self.lmtp_socket):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass

    # -- clients ----------------------------------------------------------------------------
    def imap(self, user: str) -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=60)
        c.login(user, PASSWORD)
        return c

    def sieve(self, user: str) -> ManageSieve:
        """Logged-in ManageSieve session.  NB: creates user.<user>.#sieve if it is missing."""
        return ManageSieve("127.0.0.1", self.sieve_port, user)

    def sieve_put(self, user: str, name: str, script: str, activate: bool = True) -> None:
        s = self.sieve(user)
        try:
            s.putscript(name, script)
            if activate:
                s.setactive(name)
        finally:
            s.close()

    def lmtp(self) -> LMTPClient:
        return LMTPClient(self.lmtp_socket)

    def tool(self, *args, check: bool = False, **kw) -> subprocess.CompletedProcess:
        exe = args[0] if os.path.isabs(args[0]) else os.path.join(CYRUS_BIN, args[0])
        return subprocess.run([exe, "-C", self.conf_path, *args[1:]], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, check=check, **kw)


# --------------------------------------------------------------------------------------------
# deterministic content

WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda omicron sigma omega report "
         "meeting budget quarterly invoice release server mailbox replica backup restore plan "
         "draft review deadline coffee lunch holiday project customer support ticket update "
         "status weekly notes agenda minutes approval contract").split()
UMLAUT_WORDS = ["Grüße", "Entwürfe", "Änderung", "naïve", "café", "Übersicht"]

USERS = ["alice", "bob", "carol"]
OPTIONAL_USERS = ["dave"]
# folder names as the user sees them below INBOX (standard namespace, '.' separator)
FOLDERS = ["Sent", "Drafts", "Trash", "Archive", "Work", "Work.Projects", "Work.Projects.2024",
           "Odd Name", "Entw&APw-rfe"]
BASE_DATE = datetime.datetime(2024, 3, 1, 9, 0, 0, tzinfo=datetime.timezone.utc)


def _words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_message(rng, tag: str, n: int, to: str, sender: str = None,
                 subject_prefix: str = "") -> bytes:
    """A deterministic RFC 5322 message (CRLF).  Message-ID is unique per (tag, n)."""
    sender = sender or rng.choice(["newsletter@example.org", "boss@example.com",
                                   "friend@example.net", "robot@ci.example.com"])
    date = BASE_DATE + datetime.timedelta(minutes=n * 7 + rng.randrange(5))
    subj = subject_prefix + _words(rng, rng.randrange(2, 7))
    if rng.random() < 0.1:
        subj += " " + rng.choice(UMLAUT_WORDS)
    subj_hdr = subj
    if any(ord(c) > 127 for c in subj):
        subj_hdr = "=?UTF-8?B?" + base64.b64encode(subj.encode()).decode() + "?="
    hdr = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subj_hdr}",
        f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"Message-ID: <{tag}.{n}.{rng.randrange(10**9)}@cyruslab.test>",
        "MIME-Version: 1.0",
    ]
    text_lines = [_words(rng, rng.randrange(5, 14)) for _ in range(rng.randrange(3, 40))]
    if rng.random() < 0.15:
        text_lines.insert(rng.randrange(len(text_lines)), ".dot-stuffing test line")
    text = "\r\n".join(text_lines) + "\r\n"
    if rng.random() < 0.03:
        blob = rng.randbytes(rng.randrange(20000, 60000))
        b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
        boundary = f"=_b{tag}{n}"
        hdr.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        body = (f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}"
                f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Transfer-Encoding: base64\r\n"
                f'Content-Disposition: attachment; filename="data{n}.bin"\r\n\r\n{b64}'
                f"--{boundary}--\r\n")
    else:
        hdr.append("Content-Type: text/plain; charset=utf-8")
        hdr.append("Content-Transfer-Encoding: 8bit")
        body = text
    return ("\r\n".join(hdr) + "\r\n\r\n" + body).encode("utf-8")


SIEVE_ALICE_1 = """require ["fileinto"];
# cyruslab populate: file project mail
if header :contains "Subject" "[proj]" {
  fileinto "INBOX.Work.Projects";
  stop;
}
"""
SIEVE_ALICE_2 = """require ["fileinto", "imap4flags"];
# cyruslab mutate: project mail goes to the archive now, flagged
if header :contains "Subject" "[proj]" {
  addflag "\\\\Flagged";
  fileinto "INBOX.Archive";
  stop;
}
"""
SIEVE_BOB = """require ["fileinto"];
# cyruslab populate: inactive spam rule
if header :contains "X-Spam" "yes" {
  fileinto "INBOX.Trash";
}
"""


def _uids(c, criteria="ALL"):
    data = _check(c.uid("SEARCH", criteria), "UID SEARCH")
    return [int(x) for x in (data[0] or b"").split()]


def _uidset(uids):
    return ",".join(str(u) for u in uids)


def _store(c, uids, op, flags):
    if uids:
        _check(c.uid("STORE", _uidset(uids), op, flags), "UID STORE")


def _deliver_batch(inst, rng, tag, count, users, archive_users=(), multi=True):
    """Deliver `count` messages over LMTP.  Returns counters."""
    stats = {"transactions": 0, "multi_rcpt": 0, "to_archive": 0, "proj": 0, "rcpts": 0}
    lm = inst.lmtp()
    try:
        for n in range(count):
            r = rng.random()
            prefix = ""
            if multi and len(users) >= 3 and r < 0.10:
                rcpts = rng.sample(users, 3)
                stats["multi_rcpt"] += 1
            elif archive_users and r < 0.20:
                rcpts = [rng.choice(list(archive_users)) + "+Archive"]
                stats["to_archive"] += 1
            else:
                rcpts = [rng.choice(users)]
            if "alice" in rcpts and rng.random() < 0.1:
                prefix = "[proj] "
                stats["proj"] += 1
            msg = make_message(rng, tag, n, ", ".join(f"{u}@cyruslab" for u in rcpts),
                               subject_prefix=prefix)
            res = lm.deliver("sender@example.org", rcpts, msg)
            for rc, (code, text) in res.items():
                if not 200 <= code < 300:
                    raise RuntimeError(f"LMTP delivery to {rc} failed: {code} {text}")
            stats["transactions"] += 1
            stats["rcpts"] += len(rcpts)
    finally:
        lm.close()
    return stats


def _append(c, mailbox, flags, when, msg):
    _check(c.append(q(mailbox), flags, imaplib.Time2Internaldate(when), msg), "APPEND")


def populate(inst: CyrusInstance, seed: int = 1, messages: int = 300,
             with_dave: bool = True) -> dict:
    """Fill a fresh, running instance deterministically.

    Users alice, bob, carol (+ dave: INBOX and Sent only) with INBOX + Sent, Drafts, Trash,
    Archive, Work, Work.Projects, Work.Projects.2024, "Odd Name", Entw&APw-rfe; `anyone p` on
    Archive so user+Archive is delivered there; quotas on alice and bob; Sieve: alice "main"
    (active, files "[proj]" mail), bob "spam" (inactive); `messages` LMTP deliveries (10 %
    three recipients -> hard links, 10 % user+Archive); APPENDs with flags/internaldate;
    \\Seen/\\Flagged/\\Answered/$Label1; COPY; \\Deleted+EXPUNGE; subscriptions; alice shares
    Work with bob (lrs, bob sets \\Seen there) and "Odd Name" with carol (lrsw); mailbox
    METADATA on alice's Work.  Returns a summary dict."""
    rng = random.Random(seed)
    users = USERS + (OPTIONAL_USERS if with_dave else [])
    summary = {"seed": seed, "users": list(users), "folders": {}, "appended": 0, "copied": 0,
               "expunged": 0, "flag_stores": 0}

    # --- admin: users, folders, ACLs, quota
    a = inst.imap(ADMIN)
    try:
        for u in users:
            _check(a.create(q(f"user.{u}")), f"CREATE user.{u}")
            flist = FOLDERS if u != "dave" else ["Sent"]
            for fo in flist:
                _check(a.create(q(f"user.{u}.{fo}")), f"CREATE user.{u}.{fo}")
            summary["folders"][u] = ["INBOX"] + [f"INBOX.{fo}" for fo in flist]
            if "Archive" in flist:
                # lets lmtp deliver user+Archive into the folder
                _check(a.setacl(q(f"user.{u}.Archive"), "anyone", "p"), "SETACL anyone p")
        _check(a.setquota(q("user.alice"), "(STORAGE 500000 MESSAGE 100000)"), "SETQUOTA alice")
        _check(a.setquota(q("user.bob"), "(STORAGE 200000)"), "SETQUOTA bob")
    finally:
        a.logout()

    # --- sieve (before delivery so that filing happens)
    inst.sieve_put("alice", "main", SIEVE_ALICE_1, activate=True)
    inst.sieve_put("bob", "spam", SIEVE_BOB, activate=False)
    summary["sieve"] = {"alice": ["main (active)"], "bob": ["spam"]}

    # --- LMTP delivery
    deliver_users = ["alice", "bob", "carol"]
    st = _deliver_batch(inst, rng, f"p{seed}", messages, deliver_users,
                        archive_users=("alice", "bob", "carol"))
    if with_dave:
        st_d = _deliver_batch(inst, rng, f"p{seed}d", 5, ["dave"], multi=False)
        st["transactions"] += st_d["transactions"]
        st["rcpts"] += st_d["rcpts"]
    summary["lmtp"] = st

    # --- per-user IMAP actions
    for u in users:
        c = inst.imap(u)
        try:
            # APPENDs with flags and internaldate
            for i, (box, flags) in enumerate((("INBOX.Sent", r"(\Seen)"),
                                              ("INBOX.Sent", r"(\Seen \Answered $Label1)"),
                                              ("INBOX", r"(\Flagged)"))):
                if u == "dave" and box != "INBOX":
                    box = "INBOX.Sent"
                when = BASE_DATE - datetime.timedelta(days=30 - i, hours=rng.randrange(24))
                _append(c, box, flags, when,
                        make_message(rng, f"a{seed}{u}", i, f"{u}@cyruslab", sender=f"{u}@cyruslab"))
                summary["appended"] += 1
            if u != "dave":
                _append(c, "INBOX.Drafts", r"(\Draft)", BASE_DATE,
                        make_message(rng, f"a{seed}{u}", 9, "someone@example.com",
                                     sender=f"{u}@cyruslab"))
                summary["appended"] += 1
            # flags in INBOX
            _check(c.select("INBOX"), "SELECT INBOX")
            uids = _uids(c)
            for flag, frac in ((r"\Seen", 0.5), (r"\Flagged", 0.1), (r"\Answered", 0.1),
                               ("$Label1", 0.05)):
                chosen = [x for x in uids if rng.random() < frac]
                _store(c, chosen, "+FLAGS", f"({flag})")
                summary["flag_stores"] += 1
            # COPY (hard links) into Archive / Work
            if u != "dave":
                chosen = [x for x in uids if rng.random() < 0.1]
                if chosen:
                    _check(c.uid("COPY", _uidset(chosen), q("INBOX.Archive")), "COPY")
                    summary["copied"] += len(chosen)
                chosen = [x for x in uids if rng.random() < 0.05]
                if chosen:
                    _check(c.uid("COPY", _uidset(chosen), q("INBOX.Work")), "COPY")
                    summary["copied"] += len(chosen)
            # \Deleted + EXPUNGE
            chosen = rng.sample(uids, min(3, len(uids)))
            _store(c, chosen, "+FLAGS", r"(\Deleted)")
            _check(c.expunge(), "EXPUNGE")
            summary["expunged"] += len(chosen)
            c.close()
            # flags in other folders
            if u != "dave":
                for box in ("INBOX.Archive", "INBOX.Work"):
                    _check(c.select(q(box)), f"SELECT {box}")
                    bu = _uids(c)
                    _store(c, [x for x in bu if rng.random() < 0.3], "+FLAGS", r"(\Seen)")
                    _store(c, [x for x in bu if rng.random() < 0.1], "+FLAGS", "($Label1)")
                    c.close()
            # subscriptions of own folders
            for box in ["INBOX"] + [f"INBOX.{fo}" for fo in
                                    (FOLDERS if u != "dave" else ["Sent"])
                                    if fo != "Trash"]:
                _check(c.subscribe(q(box)), "SUBSCRIBE")
        finally:
            c.logout()

    # --- sharing: alice shares Work with bob (lrs) and "Odd Name" with carol (lrsw)
    c = inst.imap("alice")
    try:
        _check(c.setacl(q("INBOX.Work"), "bob", "lrs"), "SETACL")
        _check(c.setacl(q("INBOX.Odd Name"), "carol", "lrsw"), "SETACL")
        _check(c._simple_command("SETMETADATA", q("INBOX.Work"),
                                 '(/private/comment "alice private note" '
                                 '/shared/comment "shared work folder")'), "SETMETADATA")
    finally:
        c.logout()
    c = inst.imap("bob")
    try:
        _check(c.subscribe(q("user.alice.Work")), "SUBSCRIBE")
        _check(c.select(q("user.alice.Work")), "SELECT user.alice.Work")
        wu = _uids(c)
        seen = [x for x in wu if rng.random() < 0.5] or wu[:1]
        _store(c, seen, "+FLAGS", r"(\Seen)")
        summary["bob_seen_in_alice_work"] = len(seen)
        c.close()
    finally:
        c.logout()
    c = inst.imap("carol")
    try:
        _check(c.subscribe(q("user.alice.Odd Name")), "SUBSCRIBE")
    finally:
        c.logout()
    return summary


def mutate(inst: CyrusInstance, seed: int = 2) -> dict:
    """A second, deterministic round of changes on a populated, running instance: changed
    Sieve script (alice), 40 new LMTP messages, flag changes, expunges (bob), RENAME alice
    INBOX.Work.Projects.2024 -> INBOX.Archive.2024, DELETE bob INBOX.Trash, subscription change
    (bob), new user erin with mail, user carol deleted (admin SETACL + DELETE user.carol ->
    DELETED.user.carol.*), quota changes.  Returns a summary dict."""
    rng = random.Random(seed)
    summary = {"seed": seed}
    existing = ["alice", "bob", "carol"]

    # changed sieve script first (new mail below is filed by it)
    inst.sieve_put("alice", "main", SIEVE_ALICE_2, activate=True)
    summary["sieve_changed"] = "alice/main"

    summary["lmtp"] = _deliver_batch(inst, rng, f"m{seed}", 40, existing,
                                     archive_users=("bob",))

    # flag changes + expunge
    c = inst.imap("alice")
    try:
        _check(c.select("INBOX"), "SELECT")
        uids = _uids(c)
        _store(c, [x for x in uids if rng.random() < 0.1], "+FLAGS", r"(\Flagged)")
        _store(c, [x for x in uids if rng.random() < 0.1], "-FLAGS", r"(\Seen)")
        _store(c, [x for x in uids if rng.random() < 0.05], "+FLAGS", "($Label1 $Junk)")
        c.close()
        # RENAME a nested folder across the hierarchy
        _check(c.rename(q("INBOX.Work.Projects.2024"), q("INBOX.Archive.2024")), "RENAME")
        summary["renamed"] = "alice INBOX.Work.Projects.2024 -> INBOX.Archive.2024"
    finally:
        c.logout()
    c = inst.imap("bob")
    try:
        _check(c.select("INBOX"), "SELECT")
        uids = _uids(c)
        chosen = rng.sample(uids, min(2, len(uids)))
        _store(c, chosen, "+FLAGS", r"(\Deleted)")
        _check(c.expunge(), "EXPUNGE")
        summary["expunged"] = len(chosen)
        c.close()
        _check(c.select(q("user.alice.Work")), "SELECT")
        wu = _uids(c)
        _store(c, [x for x in wu if rng.random() < 0.3], "-FLAGS", r"(\Seen)")
        c.close()
        # subscription change (Cyrus refuses SUBSCRIBE to a non-existent mailbox, so
        # subscribe before the DELETE below)
        _check(c.unsubscribe(q("INBOX.Work.Projects")), "UNSUBSCRIBE")
        _check(c.subscribe(q("INBOX.Trash")), "SUBSCRIBE")
        summary["subscriptions"] = "bob -INBOX.Work.Projects +INBOX.Trash"
        # folder DELETE as owner
        _check(c.delete(q("INBOX.Trash")), "DELETE")
        summary["deleted_folder"] = "bob INBOX.Trash"
    finally:
        c.logout()

    # admin: new user erin, delete carol, quota change
    a = inst.imap(ADMIN)
    try:
        _check(a.create(q("user.erin")), "CREATE user.erin")
        _check(a.create(q("user.erin.Sent")), "CREATE user.erin.Sent")
        _check(a.setacl(q("user.carol"), ADMIN, "lrswipkxtecdan"), "SETACL admin")
        _check(a.delete(q("user.carol")), "DELETE user.carol")
        _check(a.setquota(q("user.bob"), "(STORAGE 300000 MESSAGE 5000)"), "SETQUOTA bob")
        _check(a.setquota(q("user.alice"), "(STORAGE 600000)"), "SETQUOTA alice")
    finally:
        a.logout()
    summary["new_user"] = "erin"
    summary["deleted_user"] = "carol"
    summary["lmtp_erin"] = _deliver_batch(inst, rng, f"m{seed}e", 10, ["erin"], multi=False)
    c = inst.imap("erin")
    try:
        _check(c.subscribe("INBOX"), "SUBSCRIBE")
        _check(c.select("INBOX"), "SELECT")
        uids = _uids(c)
        _store(c, uids[:3], "+FLAGS", r"(\Seen)")
        c.close()
    finally:
        c.logout()
    return summary


# --------------------------------------------------------------------------------------------
# observation

def _resp_text(data):
    if data and all(isinstance(x, list) for x in data):   # e.g. getquotaroot: [[..], [..]]
        return [_resp_text(x) for x in data]
    out = []
    for line in _group_untagged(data):
        out.append(line.replace(b"\x00", b"|").decode("utf-8", "replace"))
    return out


def _safe(fn, *args):
    """Run an imaplib call; return (status, decoded data) without raising on NO."""
    try:
        typ, data = fn(*args)
    except imaplib.IMAP4.error as e:
        return ["ERR", str(e)]
    return [typ, _resp_text(data)]


_FETCH_ITEMS = "(UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ BODY.PEEK[])"


def _fetch_messages(c) -> dict:
    typ, data = c.uid("FETCH", "1:*", _FETCH_ITEMS)
    if typ != "OK":
        return {"error": f"{typ} {data!r}"}
    msgs = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, body = item[0], item[1]
        rest = b"".join(x for x in item[2:] if isinstance(x, bytes))
        meta = head + b" " + rest
        m_uid = re.search(rb"\bUID (\d+)", meta)
        if not m_uid:
            continue
        m_flags = re.search(rb"\bFLAGS \(([^)]*)\)", meta)
        m_date = re.search(rb'\bINTERNALDATE "([^"]*)"', meta)
        m_size = re.search(rb"\bRFC822\.SIZE (\d+)", meta)
        m_mod = re.search(rb"\bMODSEQ \((\d+)\)", meta)
        flags = sorted(f for f in (m_flags.group(1).decode().split() if m_flags else [])
                       if f != "\\Recent")
        msgs[str(int(m_uid.group(1)))] = {
            "flags": flags,
            "internaldate": m_date.group(1).decode() if m_date else None,
            "size": int(m_size.group(1)) if m_size else None,
            "modseq": int(m_mod.group(1)) if m_mod else None,
            "sha1": hashlib.sha1(body).hexdigest(),
            "body_len": len(body),
        }
    return msgs


def _status(c, box):
    typ, data = c.status(q(box), "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ UNSEEN)")
    if typ != "OK":
        return {"error": f"{typ} {data!r}"}
    line = _group_untagged(data)[0]
    m = re.search(rb"\(([^()]*)\)\s*$", line)
    toks = m.group(1).decode().split() if m else []
    return {toks[i]: int(toks[i + 1]) for i in range(0, len(toks) - 1, 2)}


def _examine(c, box):
    typ, data = c.select(q(box), readonly=True)
    if typ != "OK":
        return None, f"{typ} {data!r}"
    mboxid = None
    for line in c.untagged_responses.get("OK", []):
        m = re.search(rb"\[MAILBOXID \(([^)]*)\)\]", line)
        if m:
            mboxid = m.group(1).decode()
    return mboxid, None


def _admin_mailboxes(inst):
    a = inst.imap(ADMIN)
    try:
        return parse_list_response(_check(a.list('""', '"*"'), "LIST"))
    finally:
        a.logout()


def _users_from_list(names):
    users = set()
    for n in names:
        parts = n.split(SEP)
        if len(parts) == 2 and parts[0] == "user":
            users.add(parts[1])
    return sorted(users)


def capture_state(inst: CyrusInstance) -> dict:
    """Everything observable over IMAP and ManageSieve, without changing server state."""
    state = {"admin": {}, "sieve": {}, "users": {}}

    # 1. which users have a #sieve mailbox already (a ManageSieve login would create it)
    pre = [e[2] for e in _admin_mailboxes(inst)]
    users = _users_from_list(pre)
    for u in users:
        if f"user.{u}.#sieve" not in pre:
            continue
        s = inst.sieve(u)
        try:
            scripts = s.listscripts()
            state["sieve"][u] = {
                "scripts": scripts,
                "content": {name: s.getscript(name) for name, _ in scripts},
            }
        finally:
            s.close()

    # 2. admin view: all mailboxes (incl. DELETED.* and #sieve), ACLs, quotas
    a = inst.imap(ADMIN)
    try:
        alist = parse_list_response(_check(a.list('""', '"*"'), "LIST"))
        state["admin"]["list"] = alist
        acls = {}
        for _, _, name in alist:
            acls[name] = _safe(a.getacl, q(name))
        state["admin"]["acl"] = acls
        quotas = {}
        for u in users:
            quotas[u] = _safe(a.getquotaroot, q(f"user.{u}"))
        state["admin"]["quotaroot"] = quotas
    finally:
        a.logout()

    # 3. per-user view
    for u in users:
        c = inst.imap(u)
        try:
            ud = {}
            ud["list"] = parse_list_response(_check(c.list('""', '"*"'), "LIST"))
            ud["lsub"] = parse_list_response(_check(c.lsub('""', '"*"'), "LSUB"))
            ud["quotaroot"] = _safe(c.getquotaroot, "INBOX")
            folders = {}
            for flags, _, box in ud["list"]:
                if any(f.lower() in ("\\noselect", "\\nonexistent") for f in flags):
                    continue
                fd = {"status": _status(c, box), "myrights": _safe(c.myrights, q(box))}
                if box == "INBOX" or box.startswith("INBOX" + SEP):
                    fd["acl"] = _safe(c.getacl, q(box))
                    fd["metadata"] = _safe(c._simple_command, "GETMETADATA", q(box),
                                           "(/private/comment /shared/comment)")
                    if fd["metadata"][0] == "OK":
                        fd["metadata"][1] = _resp_text(c.untagged_responses.pop(
                            "METADATA", []))
                mboxid, err = _examine(c, box)
                if err:
                    fd["examine_error"] = err
                else:
                    fd["mailboxid"] = mboxid
                    fd["messages"] = _fetch_messages(c)
                folders[box] = fd
            ud["folders"] = folders
            state["users"][u] = ud
        finally:
            c.logout()
    return state


def _short(v, limit=160):
    s = json.dumps(v, ensure_ascii=False, sort_keys=True)
    return s if len(s) <= limit else s[:limit] + "..."


def diff_states(a: dict, b: dict) -> list:
    """Human-readable differences between two capture_state() results; [] if equal."""
    out = []

    def keyorder(k):
        k = str(k)
        return (0, int(k), "") if k.isdigit() else (1, 0, k)

    def is_listing(v):
        return isinstance(v, list) and all(
            isinstance(e, list) and len(e) == 3 and isinstance(e[2], str) for e in v)

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y), key=keyorder):
                p = f"{path}/{k}" if path else str(k)
                if k not in y:
                    out.append(f"{p}: only in A: {_short(x[k])}")
                elif k not in x:
                    out.append(f"{p}: only in B: {_short(y[k])}")
                else:
                    walk(x[k], y[k], p)
        elif x != y and is_listing(x) and is_listing(y) and (x or y):
            # LIST/LSUB output: [flags, delimiter, name] per mailbox
            xa = {e[2]: e for e in x}
            yb = {e[2]: e for e in y}
            for n in sorted(set(xa) | set(yb)):
                if n not in yb:
                    out.append(f"{path}: mailbox only in A: {_short(xa[n])}")
                elif n not in xa:
                    out.append(f"{path}: mailbox only in B: {_short(yb[n])}")
                elif xa[n] != yb[n]:
                    out.append(f"{path}[{n}]: A={_short(xa[n])} B={_short(yb[n])}")
            if len(xa) != len(x) or len(yb) != len(y):
                out.append(f"{path}: duplicate names: A={_short(x)} B={_short(y)}")
        elif x != y:
            out.append(f"{path}: A={_short(x)} B={_short(y)}")

    walk(a, b, "")
    return out


# --------------------------------------------------------------------------------------------
# consistency tools

def _known_mailboxes(inst):
    r = inst.tool("ctl_mboxlist", "-d")
    if r.returncode != 0:
        raise RuntimeError(f"ctl_mboxlist -d failed ({r.returncode}): {r.stderr}")
    data = json.loads(r.stdout or "{}")
    return data


def reconstruct_findings(inst: CyrusInstance) -> list:
    """Run reconstruct -n -r -G per user plus chk_cyrus; every output line that is not just a
    known mailbox name is a finding.  Works with the server running or stopped."""
    findings = []
    mboxes = _known_mailboxes(inst)
    live = {n for n, v in mboxes.items() if "d" not in str(v.get("mbtype", ""))}
    known = set(mboxes)
    prefixes = [f"user.{u}" for u in _users_from_list(live)]
    if any(n.startswith("DELETED.") for n in live):
        prefixes.append("DELETED")
    for p in prefixes:
        r = inst.tool("reconstruct", "-n", "-r", "-G", p)
        if r.returncode != 0:
            findings.append(f"reconstruct {p}: exit {r.returncode}")
        for line in (r.stdout + r.stderr).splitlines():
            line = line.strip()
            if line and line not in known:
                findings.append(f"reconstruct {p}: {line}")
    r = inst.tool("chk_cyrus")
    if r.returncode != 0:
        findings.append(f"chk_cyrus: exit {r.returncode}")
    for line in r.stdout.splitlines():
        if line.strip():
            findings.append(f"chk_cyrus: {line.strip()}")
    for line in r.stderr.splitlines():
        line = line.strip()
        if line and not (line.startswith("Examining partition") or line.startswith("checking: ")):
            findings.append(f"chk_cyrus: {line}")
    return findings


# --------------------------------------------------------------------------------------------
# CLI

def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="private Cyrus instances for cyrsync tests")
    ap.add_argument("action", choices=["setup", "start", "stop", "populate", "mutate",
                                       "capture", "reconstruct", "status"])
    ap.add_argument("base")
    ap.add_argument("name")
    ap.add_argument("--legacy", action="store_true", help="mailbox_legacy_dirs: yes")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--messages", type=int, default=300)
    args = ap.parse_args(argv)
    require_environment()
    legacy = args.legacy
    meta = os.path.join(os.path.abspath(args.base), "etc", "cyruslab.json")
    if not legacy and args.action != "setup" and os.path.exists(meta):
        with open(meta) as f:
            legacy = bool(json.load(f).get("legacy_dirs"))
    inst = CyrusInstance(args.base, args.name, legacy_dirs=legacy)
    if args.action == "setup":
        inst.setup()
        print(json.dumps({"base": inst.base, "imap_port": inst.imap_port,
                          "sieve_port": inst.sieve_port, "lmtp_socket": inst.lmtp_socket}))
    elif args.action == "start":
        inst.start()
    elif args.action == "stop":
        inst.stop()
    elif args.action == "status":
        print("running" if inst.is_running() else "stopped")
    elif args.action == "populate":
        print(json.dumps(populate(inst, seed=args.seed or 1, messages=args.messages), indent=1))
    elif args.action == "mutate":
        print(json.dumps(mutate(inst, seed=args.seed or 2), indent=1))
    elif args.action == "capture":
        print(json.dumps(capture_state(inst), indent=1, sort_keys=True, ensure_ascii=False))
    elif args.action == "reconstruct":
        f = reconstruct_findings(inst)
        print("\n".join(f) if f else "no findings")
        return 1 if f else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
