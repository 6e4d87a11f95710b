#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

A few small valid inputs per target, built from the formats' documentation
(doc/formats/*.md) or copied from the tests/data fixtures. Deterministic: running it again
rewrites the same bytes. Usage: python3 tests/fuzz/make_corpus.py (from anywhere).
"""
import gzip
import hashlib
import io
import pathlib
import shutil
import struct
import tarfile
import zlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = ROOT / "tests" / "data"
CORPUS = HERE / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def fixture(target, name, path):
    write(target, name, (DATA / path).read_bytes())


# ------------------------------------------------------------------ protocol (protocol.md)

def u8(v): return struct.pack(">B", v)
def u16(v): return struct.pack(">H", v)
def u32(v): return struct.pack(">I", v)
def u64(v): return struct.pack(">Q", v)
def i64(v): return struct.pack(">q", v)
def s(v): return u32(len(v)) + v
def path(root, rel): return s(root) + s(rel)
def stat(size, mtime, ctime, ino): return u64(size) + i64(mtime) + i64(ctime) + u64(ino)


def frame(mtype, payload):
    head = u32(len(payload)) + u16(mtype) + u16(0)
    return head + payload + u32(zlib.crc32(head + payload))


def protocol():
    st = stat(1234, 1700000000 * 10**9, 1700000001 * 10**9, 42)
    hello = frame(1, s(b"CYRSYNC") + u32(1) + s(b"sync"))
    hello_ok = frame(2, u32(1) + s(b"3f2a9c1e-replica") + u8(0))
    manifest = frame(11, u32(2)
                     + path(b"spool", b"u/user/alice/cyrus.index") + s(b"alice") + s(b"f-1")
                     + u8(0) + st + u8(0) + u32(20)
                     + path(b"config", b"user/a/alice.seen") + s(b"alice") + s(b"")
                     + u8(1) + st + u8(1) + u32(0))
    folder_begin = frame(20, s(b"5f1c6d2a") + s(b"alice") + s(b"user.alice")
                         + path(b"spool", b"u/user/alice") + path(b"archive", b"u/user/alice")
                         + u8(0) + u8(1) + u32(1)
                         + path(b"spool", b"u/user/alice/cyrus.header") + st)
    need = frame(21, u32(2) + u32(1) + u8(0) + u32(7) + u8(1))
    body = (frame(22, u32(7) + u8(0) + u64(5)) + frame(40, b"hello")
            + frame(41, s(hashlib.sha1(b"hello").hexdigest().encode())))
    file_put = (frame(30, path(b"config", b"user/a/alice.sub") + s(b"alice") + u8(1) + st
                      + u8(0) + u64(0))
                + frame(30, path(b"spool", b"u/user/alice/INBOX") + s(b"alice") + u8(2) + st
                        + u8(0) + s(b"5f1c6d2a")))
    meta = frame(63, s(b"cyrus.index") + path(b"spool", b"u/user/alice/cyrus.index") + u8(1)
                 + st + s(b""))
    user_state = frame(61, i64(1700000000) + u32(1)
                       + s(b"5f1c6d2a") + s(b"user.alice") + s(b"e") + u32(1)
                       + s(b"cyrus.header") + path(b"spool", b"u/user/alice/cyrus.header")
                       + u8(1) + st + s(b"")
                       + u32(0))
    misc = (frame(10, s(b"")) + frame(12, u64(3)) + frame(23, u32(9)) + frame(24, b"")
            + frame(25, s(b"5f1c6d2a") + u8(1)) + frame(31, path(b"spool", b"x"))
            + frame(32, path(b"spool", b"y")) + frame(42, b"rs\x026\x00") + frame(50, b"")
            + frame(60, s(b"alice")) + frame(62, s(b"5f1c6d2a"))
            + frame(64, s(b"5f1c6d2a") + u32(7) + u8(1)) + frame(65, path(b"config", b"z"))
            + frame(66, b"") + frame(70, u32(1) + s(b"alice") + i64(1700000000))
            + frame(255, u32(3) + s(b"bad payload")))
    write("protocol_frame", "handshake", hello + hello_ok)
    write("protocol_frame", "manifest", frame(10, s(b"alice")) + manifest + frame(12, u64(2)))
    write("protocol_frame", "folder", folder_begin + need + body + frame(24, b""))
    write("protocol_frame", "file_put", file_put)
    write("protocol_frame", "read_service", user_state + meta)
    write("protocol_frame", "all_types", misc)
    write("protocol_frame", "payload_hello", s(b"CYRSYNC") + u32(1) + s(b"read"))


# ------------------------------------------------------------------ cyrus.index (cyrus_index.md)

def index_file(minor, header_size, record_size, crc, records):
    h = bytearray(header_size)
    struct.pack_into(">IIIIII", h, 0, 1, 0, minor, header_size, record_size, len(records))
    struct.pack_into(">I", h, 28, max([r[0] for r in records] + [0]))  # last_uid
    struct.pack_into(">I", h, 44, 1700000000)                          # uidvalidity
    if crc:
        struct.pack_into(">I", h, header_size - 4, zlib.crc32(bytes(h[:-4])))
    out = bytes(h)
    for uid, size, flags in records:
        r = bytearray(record_size)
        struct.pack_into(">III", r, 0, uid, 1700000000 + uid, 1700000000)
        struct.pack_into(">I", r, 12, size)
        struct.pack_into(">I", r, 32, flags)
        if crc:
            struct.pack_into(">I", r, record_size - 4, zlib.crc32(bytes(r[:-4])))
        out += bytes(r)
    return out


def cyrus_index():
    fixture("cyrus_index", "cyrus-3.6.1.index", "cyrus-3.6.1/cyrus.index")
    write("cyrus_index", "v10", index_file(10, 96, 88, False, [(1, 100, 0), (2, 200, 0x10)]))
    write("cyrus_index", "v13", index_file(13, 128, 104, True, [(3, 300, 0x4), (9, 50, 0)]))
    write("cyrus_index", "v17-empty", index_file(17, 160, 112, True, []))


# ------------------------------------------------------------------ cyrus.header and dlist

MAGIC = (b"\xa1\x02\x8b\x0dCyrus mailbox header\n"
         b"\"The best thing about this system was that it had lots of goals.\"\n"
         b"\t--Jim Morris on Andrew\n")


def cyrus_header():
    fixture("cyrus_header", "cyrus-3.6.1.header", "cyrus-3.6.1/cyrus.header")
    write("cyrus_header", "text-format",
          MAGIC + b"user.alice\t5f1c6d2a-0b1e\n$Label1 $Label2  Work \nalice\tlrswipkxtecdan\t\n")
    write("cyrus_header", "dlist-body",
          b"%(Q user.alice T e N user.alice I 5f1c6d2a U ($Label1 NIL \"two words\")"
          b" A %(alice lrswipkxtecdan anyone {2}\r\nlr))\n")
    write("cyrus_header", "dlist-nested",
          b"%(A (1 2 (3 NIL) %(k \"v\\\"q\")) B {5+}\r\nhello)")


# ------------------------------------------------------------------ cyrus databases

def cyrus_db():
    for name in ("twoskip.db", "skiplist.db", "flat.db"):
        fixture("cyrus_db", name, "cyrusdb-3.6.1/" + name)
    write("cyrus_db", "flat-escapes", b"user.a\xff\x89b\tvalue\xff\xffwith\ttab\nk\tv\n")


# ------------------------------------------------------------------ tar (archive.md)

def strip_end_blocks(data):
    # The archive never writes end-of-archive blocks; the parser rejects zero blocks.
    while data.endswith(b"\0" * 512) and len(data) >= 512:
        data = data[:-512]
    return data


def tar_stream(entries, fmt):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, payload, mtime in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.mode = 0o600
            if kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = payload.decode()
                t.addfile(info)
            else:
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
    return strip_end_blocks(buf.getvalue())


def tar_reader():
    archive = gzip.decompress((DATA / "archive-v1" / "archive.tar.gz").read_bytes())
    write("tar_reader", "archive-v1.tar", strip_end_blocks(archive))
    write("tar_reader", "ustar", tar_stream(
        [("runs/1.json", "file", b'{"run": 1}\n', 1704067200),
         ("imap/INBOX", "link", b"5f1c6d2a", 1704067200),
         ("files/empty", "file", b"", 0)], tarfile.USTAR_FORMAT))
    write("tar_reader", "pax", tar_stream(
        [("folders/" + "x" * 150 + "/cyrus.index", "file", b"0123456789" * 60, 1704067200),
         ("imap/" + "y" * 120, "link", b"z" * 130, 1704067200)], tarfile.PAX_FORMAT))


# ------------------------------------------------------------------ gzip members

def gzip_member():
    fixture("gzip_member", "archive-v1.tar.gz", "archive-v1/archive.tar.gz")
    member = tar_stream([("user/golden.seen", "file", b"seen data\n", 1704067200)],
                        tarfile.USTAR_FORMAT)
    write("gzip_member", "two-members",
          gzip.compress(member, mtime=0) + gzip.compress(member[:512] + member[512:], 9, mtime=0))


# ------------------------------------------------------------------ librsync delta and signature

# The basis of fuzz_rsync_patch.cc and fuzz_rsync_signature.cc.
BASIS = b"".join(b"%04d The quick brown fox jumps over the lazy dog.\n" % i for i in range(60))

DELTA_MAGIC = u32(0x72730236)
BLAKE2_SIG_MAGIC = 0x72730137
RK_BLAKE2_SIG_MAGIC = 0x72730147


def literal(data):
    # Commands 0x01-0x40 carry the length in the opcode; 0x41 has a 1-byte length.
    return (u8(len(data)) if len(data) <= 64 else u8(0x41) + u8(len(data))) + data


def copy(pos, length):
    # COPY_N2_N2 (0x4a): 2-byte position, 2-byte length.
    return u8(0x4a) + u16(pos) + u16(length)


def rollsum(block):
    s1 = s2 = 0
    for c in block:
        s1 += c + 31
        s2 += s1
    return ((s2 & 0xffff) << 16) | (s1 & 0xffff)


def blake2_signature(data, block_len, strong_len):
    out = u32(BLAKE2_SIG_MAGIC) + u32(block_len) + u32(strong_len)
    for off in range(0, len(data), block_len):
        block = data[off:off + block_len]
        out += u32(rollsum(block)) + hashlib.blake2b(block, digest_size=32).digest()[:strong_len]
    return out


def rsync():
    write("rsync_patch", "empty", DELTA_MAGIC + u8(0))
    write("rsync_patch", "literal", DELTA_MAGIC + literal(b"new file\n") + u8(0))
    write("rsync_patch", "copy-all", DELTA_MAGIC + u8(0x46) + u8(0) + u16(len(BASIS)) + u8(0))
    write("rsync_patch", "mixed", DELTA_MAGIC + copy(0, 1000) + literal(b"an inserted line\n" * 5)
          + copy(1500, 256) + literal(b"tail") + u8(0))
    write("rsync_signature", "blake2-basis", blake2_signature(BASIS, 256, 32))
    write("rsync_signature", "blake2-short", blake2_signature(BASIS[:700], 128, 8))
    write("rsync_signature", "rk-empty", u32(RK_BLAKE2_SIG_MAGIC) + u32(256) + u32(32))


def main():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    protocol()
    cyrus_index()
    cyrus_header()
    cyrus_db()
    tar_reader()
    gzip_member()
    rsync()


if __name__ == "__main__":
    main()
