#include "cyrus/cyrusdb.h"

#include <cstdint>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/hash.h"

namespace cyrsync::cyrus {
namespace internal {
namespace {

constexpr std::string_view kTwoskipMagic("\xa1\x02\x8b\x0dtwoskip file\0\0\0\0", 20);
constexpr std::string_view kSkiplistMagic("\xa1\x02\x8b\x0dskiplist file\0\0\0", 20);
constexpr std::string_view kCyrusMagicPrefix("\xa1\x02\x8b\x0d", 4);

Status DbError(std::string_view path, std::string_view fmt, std::string_view what,
               uint64_t offset) {
  return CorruptionError(std::string(path) + ": " + std::string(fmt) + ": " + std::string(what) +
                         " at offset " + std::to_string(offset));
}

// ---------------------------------------------------------------------------------- twoskip

constexpr size_t kTsHeaderSize = 64;
constexpr uint64_t kTsDummyOffset = 64;
constexpr uint32_t kTsVersion = 1;
constexpr uint32_t kTsDirty = 1;
constexpr uint8_t kTsMaxLevel = 31;
constexpr char kTsDummy = '=';
constexpr char kTsRecord = '+';
constexpr char kTsDelete = '-';

struct TsHeader {
  uint64_t num_records = 0;
  uint64_t current_size = 0;
  uint32_t flags = 0;
};

struct TsRecord {
  uint64_t offset = 0;
  char type = 0;
  std::vector<uint64_t> ptrs;  // level + 1 pointers
  uint32_t crc_tail = 0;
  uint64_t key_offset = 0;
  uint64_t keylen = 0;
  uint64_t vallen = 0;
  uint64_t tail_len = 0;  // key + value + padding
};

uint64_t RoundUp8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

Result<TsHeader> ParseTsHeader(std::string_view b, std::string_view path) {
  if (b.size() < kTsHeaderSize) return DbError(path, "twoskip", "file shorter than header", 0);
  if (b.substr(0, kTwoskipMagic.size()) != kTwoskipMagic) {
    return DbError(path, "twoskip", "bad magic", 0);
  }
  if (Crc32(b.substr(0, 60)) != LoadBE32(b, 60)) {
    return DbError(path, "twoskip", "header CRC mismatch", 60);
  }
  if (LoadBE32(b, 20) > kTsVersion) return DbError(path, "twoskip", "unsupported version", 20);
  TsHeader h;
  h.num_records = LoadBE64(b, 32);
  h.current_size = LoadBE64(b, 48);
  h.flags = LoadBE32(b, 56);
  if (h.current_size > b.size()) {
    return DbError(path, "twoskip",
                   "truncated: current_size " + std::to_string(h.current_size) +
                       " beyond end of file (" + std::to_string(b.size()) + ")",
                   48);
  }
  if (h.current_size < kTsHeaderSize) return DbError(path, "twoskip", "bad current_size", 48);
  return h;
}

// Reads the fixed head and optional 64-bit lengths; returns the offset of the pointers.
Result<uint64_t> ParseTsLengths(std::string_view b, uint64_t end, TsRecord* r,
                                std::string_view path) {
  uint64_t off = r->offset;
  if (off % 8 != 0 || off < kTsDummyOffset || off + 8 > end) {
    return DbError(path, "twoskip", "record pointer out of range", off);
  }
  r->type = b[off];
  r->ptrs.resize(static_cast<uint8_t>(b[off + 1]) + size_t{1});
  if (r->ptrs.size() > kTsMaxLevel + size_t{1}) {
    return DbError(path, "twoskip", "bad record level", off);
  }
  r->keylen = LoadBE16(b, off + 2);
  r->vallen = LoadBE32(b, off + 4);
  uint64_t pos = off + 8;
  if (r->keylen == UINT16_MAX) {
    if (pos + 8 > end) return DbError(path, "twoskip", "record head truncated", off);
    r->keylen = LoadBE64(b, pos);
    pos += 8;
  }
  if (r->vallen == UINT32_MAX) {
    if (pos + 8 > end) return DbError(path, "twoskip", "record head truncated", off);
    r->vallen = LoadBE64(b, pos);
    pos += 8;
  }
  return pos;
}

// Parses the record at offset; it must lie entirely below end (the committed size). Checks the
// head CRC; the tail CRC is checked by CheckTsTail for records whose data is used.
Result<TsRecord> ReadTsRecord(std::string_view b, uint64_t offset, uint64_t end,
                              std::string_view path) {
  TsRecord r;
  r.offset = offset;
  ASSIGN_OR_RETURN(uint64_t pos, ParseTsLengths(b, end, &r, path));
  uint64_t head_len = pos - offset + 8 * r.ptrs.size();
  if (r.keylen > end || r.vallen > end || offset + head_len + 8 > end) {
    return DbError(path, "twoskip", "record extends past committed end", offset);
  }
  r.tail_len = RoundUp8(r.keylen + r.vallen);
  r.key_offset = offset + head_len + 8;
  if (r.key_offset + r.tail_len > end) {
    return DbError(path, "twoskip", "record extends past committed end", offset);
  }
  for (uint64_t& p : r.ptrs) {
    p = LoadBE64(b, pos);
    pos += 8;
  }
  if (Crc32(b.substr(offset, head_len)) != LoadBE32(b, pos)) {
    return DbError(path, "twoskip", "record head CRC mismatch", offset);
  }
  r.crc_tail = LoadBE32(b, pos + 4);
  return r;
}

Status CheckTsTail(std::string_view b, const TsRecord& r, std::string_view path) {
  if (Crc32(b.substr(r.key_offset, r.tail_len)) != r.crc_tail) {
    return DbError(path, "twoskip", "record tail CRC mismatch", r.offset);
  }
  return Status::Ok();
}

// The level-0 successor (cyrusdb_twoskip.c _getloc): of the two alternative pointers, one at or
// past the committed end belongs to an unfinished transaction; otherwise the larger is newer.
uint64_t TsNext(const TsRecord& r, uint64_t end) {
  uint64_t p0 = r.ptrs[0];
  uint64_t p1 = r.ptrs.size() > 1 ? r.ptrs[1] : 0;
  if (r.type == kTsDelete) return p0;
  if (p0 >= end) return p1;
  if (p1 >= end) return p0;
  return p0 > p1 ? p0 : p1;
}

Status VisitTsRecord(std::string_view b, const TsRecord& r, std::string_view path,
                     const KvVisitor& visit) {
  if (r.type != kTsRecord) return DbError(path, "twoskip", "unexpected record type", r.offset);
  RETURN_IF_ERROR(CheckTsTail(b, r, path));
  return visit(b.substr(r.key_offset, r.keylen), b.substr(r.key_offset + r.keylen, r.vallen));
}

// Returns the number of records visited.
Result<uint64_t> WalkTwoskip(std::string_view b, const TsHeader& h, std::string_view path,
                             const KvVisitor& visit) {
  const uint64_t end = h.current_size;
  ASSIGN_OR_RETURN(TsRecord rec, ReadTsRecord(b, kTsDummyOffset, end, path));
  if (rec.type != kTsDummy) return DbError(path, "twoskip", "no DUMMY record", kTsDummyOffset);
  uint64_t visited = 0;
  const uint64_t max_steps = end / 24 + 1;  // every record is at least 24 bytes
  uint64_t steps = 0;
  for (uint64_t next = TsNext(rec, end); next != 0; next = TsNext(rec, end)) {
    if (++steps > max_steps) return DbError(path, "twoskip", "pointer loop", rec.offset);
    if (next >= end) {
      return DbError(path, "twoskip", "level-0 pointer beyond committed end", rec.offset);
    }
    ASSIGN_OR_RETURN(rec, ReadTsRecord(b, next, end, path));
    if (rec.type == kTsDelete) continue;
    RETURN_IF_ERROR(VisitTsRecord(b, rec, path, visit));
    ++visited;
  }
  return visited;
}

// ---------------------------------------------------------------------------------- skiplist

constexpr uint64_t kSlHeaderSize = 48;
constexpr uint32_t kSlInorder = 1;
constexpr uint32_t kSlAdd = 2;
constexpr uint32_t kSlDelete = 4;
constexpr uint32_t kSlCommit = 255;
constexpr uint32_t kSlDummy = 257;
constexpr uint32_t kSlMaxLevel = 20;
constexpr uint32_t kSlTerminator = 0xFFFFFFFF;

struct SlNode {
  uint64_t offset = 0;
  uint32_t type = 0;
  std::string_view key;
  std::string_view data;
  uint32_t level = 0;
  uint32_t next0 = 0;  // first forward pointer (0 = end)
};

uint64_t RoundUp4(uint64_t n) { return (n + 3) & ~uint64_t{3}; }

// A byte string at off: u32 length, bytes, zero padding to 4. Returns the offset after it.
Result<uint64_t> ReadSlString(std::string_view b, uint64_t off, std::string_view* out,
                              std::string_view path, uint64_t node) {
  if (off + 4 > b.size()) return DbError(path, "skiplist", "node truncated", node);
  uint64_t len = LoadBE32(b, off);
  if (RoundUp4(len) > b.size() - off - 4) {
    return DbError(path, "skiplist", "node truncated", node);
  }
  *out = b.substr(off + 4, len);
  return off + 4 + RoundUp4(len);
}

Result<SlNode> ReadSlNode(std::string_view b, uint64_t off, std::string_view path) {
  if (off % 4 != 0 || off < kSlHeaderSize || off + 4 > b.size()) {
    return DbError(path, "skiplist", "node pointer out of range", off);
  }
  SlNode n;
  n.offset = off;
  n.type = LoadBE32(b, off);
  if (n.type != kSlInorder && n.type != kSlAdd && n.type != kSlDummy) {
    return DbError(path, "skiplist", "unexpected node type " + std::to_string(n.type), off);
  }
  ASSIGN_OR_RETURN(uint64_t pos, ReadSlString(b, off + 4, &n.key, path, off));
  ASSIGN_OR_RETURN(pos, ReadSlString(b, pos, &n.data, path, off));
  for (;; pos += 4, ++n.level) {
    if (pos + 4 > b.size()) return DbError(path, "skiplist", "pointers unterminated", off);
    uint32_t p = LoadBE32(b, pos);
    if (p == kSlTerminator) break;
    if (n.level == 0) n.next0 = p;
  }
  if (n.level == 0 || n.level > kSlMaxLevel) {
    return DbError(path, "skiplist", "bad node level", off);
  }
  return n;
}

// SAFE_TO_APPEND in cyrusdb_skiplist.c: a committed file ends at a record boundary: at logstart
// with the DUMMY/INORDER terminator, or with a COMMIT after a terminator or a DELETE record.
bool SlEndsSafely(std::string_view b, uint64_t logstart) {
  uint64_t size = b.size();
  if (size % 4 != 0 || size < kSlHeaderSize + 8) return false;
  if (size == logstart) return LoadBE32(b, size - 4) == kSlTerminator;
  if (LoadBE32(b, size - 4) != kSlCommit) return false;
  if (LoadBE32(b, size - 8) == kSlTerminator) return true;
  return size >= kSlHeaderSize + 12 && LoadBE32(b, size - 12) == kSlDelete;
}

Result<uint64_t> CheckSkiplistHeader(std::string_view b, std::string_view path) {
  if (b.size() < kSlHeaderSize) return DbError(path, "skiplist", "file shorter than header", 0);
  if (b.substr(0, kSkiplistMagic.size()) != kSkiplistMagic) {
    return DbError(path, "skiplist", "bad magic", 0);
  }
  if (LoadBE32(b, 20) != 1) return DbError(path, "skiplist", "unsupported version", 20);
  uint32_t maxlevel = LoadBE32(b, 28);
  if (maxlevel == 0 || maxlevel > kSlMaxLevel) {
    return DbError(path, "skiplist", "bad maxlevel", 28);
  }
  if (LoadBE32(b, 32) > maxlevel) return DbError(path, "skiplist", "bad curlevel", 32);
  uint64_t logstart = LoadBE32(b, 40);
  if (!SlEndsSafely(b, logstart)) {
    return FailedPreconditionError(std::string(path) +
                                   ": skiplist: last transaction not committed (needs Cyrus "
                                   "recovery, ctl_cyrusdb -r) at offset " +
                                   std::to_string(b.size()));
  }
  return uint64_t{maxlevel};
}

// ---------------------------------------------------------------------------------- flat

// 2.5+ escapes (cyrusdb_flat.c decode): 0xFF 0xFF -> 0xFF, 0xFF x -> x & 0x7F.
std::string FlatDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c != 0xFF) {
      out.push_back(s[i]);
      continue;
    }
    if (i + 1 >= s.size()) break;  // dangling escape: Cyrus drops it
    unsigned char n = static_cast<unsigned char>(s[++i]);
    out.push_back(static_cast<char>(n == 0xFF ? 0xFF : (n & 0x7F)));
  }
  return out;
}

}  // namespace
}  // namespace internal

DbFormat DetectDbFormat(std::string_view bytes) {
  using internal::kCyrusMagicPrefix;
  if (bytes.substr(0, internal::kTwoskipMagic.size()) == internal::kTwoskipMagic) {
    return DbFormat::kTwoskip;
  }
  if (bytes.substr(0, internal::kSkiplistMagic.size()) == internal::kSkiplistMagic) {
    return DbFormat::kSkiplist;
  }
  if (bytes.substr(0, kCyrusMagicPrefix.size()) == kCyrusMagicPrefix) return DbFormat::kUnknown;
  return DbFormat::kFlat;
}

Status VisitTwoskip(std::string_view bytes, std::string_view path, const KvVisitor& visit) {
  ASSIGN_OR_RETURN(internal::TsHeader h, internal::ParseTsHeader(bytes, path));
  ASSIGN_OR_RETURN(uint64_t visited, internal::WalkTwoskip(bytes, h, path, visit));
  bool clean = (h.flags & internal::kTsDirty) == 0 && h.current_size == bytes.size();
  if (clean && visited != h.num_records) {
    return internal::DbError(path, "twoskip",
                             "header counts " + std::to_string(h.num_records) + " records, found " +
                                 std::to_string(visited),
                             32);
  }
  return Status::Ok();
}

Status VisitSkiplist(std::string_view bytes, std::string_view path, const KvVisitor& visit) {
  using internal::DbError;
  ASSIGN_OR_RETURN(uint64_t maxlevel, internal::CheckSkiplistHeader(bytes, path));
  ASSIGN_OR_RETURN(internal::SlNode node, internal::ReadSlNode(bytes, 48, path));
  if (node.type != internal::kSlDummy || !node.key.empty() || !node.data.empty() ||
      node.level != maxlevel) {
    return DbError(path, "skiplist", "bad DUMMY node", 48);
  }
  const uint64_t max_steps = bytes.size() / 16 + 1;  // every node is at least 16 bytes
  for (uint64_t steps = 0; node.next0 != 0; ++steps) {
    if (steps > max_steps) return DbError(path, "skiplist", "pointer loop", node.offset);
    ASSIGN_OR_RETURN(node, internal::ReadSlNode(bytes, node.next0, path));
    if (node.type == internal::kSlDummy) {
      return DbError(path, "skiplist", "DUMMY inside the list", node.offset);
    }
    RETURN_IF_ERROR(visit(node.key, node.data));
  }
  return Status::Ok();
}

Status VisitFlat(std::string_view bytes, std::string_view path, const KvVisitor& visit) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t eol = bytes.find('\n', pos);
    if (eol == std::string_view::npos) {
      return internal::DbError(path, "flat", "last line not terminated", pos);
    }
    std::string_view line = bytes.substr(pos, eol - pos);
    size_t tab = line.find('\t');
    if (tab == std::string_view::npos) {
      return internal::DbError(path, "flat", "line without TAB", pos);
    }
    RETURN_IF_ERROR(visit(internal::FlatDecode(line.substr(0, tab)),
                          internal::FlatDecode(line.substr(tab + 1))));
    pos = eol + 1;
  }
  return Status::Ok();
}

Status VisitCyrusDb(std::string_view bytes, std::string_view path, const KvVisitor& visit) {
  switch (DetectDbFormat(bytes)) {
    case DbFormat::kTwoskip:
      return VisitTwoskip(bytes, path, visit);
    case DbFormat::kSkiplist:
      return VisitSkiplist(bytes, path, visit);
    case DbFormat::kFlat:
      return VisitFlat(bytes, path, visit);
    case DbFormat::kUnknown:
      break;
  }
  return CorruptionError(std::string(path) + ": unknown Cyrus database format at offset 0");
}

namespace {

Result<KvList> Collect(std::string_view bytes, std::string_view path,
                       Status (*walk)(std::string_view, std::string_view, const KvVisitor&)) {
  KvList out;
  RETURN_IF_ERROR(walk(bytes, path, [&out](std::string_view k, std::string_view v) {
    out.emplace_back(std::string(k), std::string(v));
    return Status::Ok();
  }));
  return out;
}

}  // namespace

Result<KvList> ReadTwoskip(std::string_view bytes, std::string_view path) {
  return Collect(bytes, path, &VisitTwoskip);
}
Result<KvList> ReadSkiplist(std::string_view bytes, std::string_view path) {
  return Collect(bytes, path, &VisitSkiplist);
}
Result<KvList> ReadFlat(std::string_view bytes, std::string_view path) {
  return Collect(bytes, path, &VisitFlat);
}
Result<KvList> ReadCyrusDb(std::string_view bytes, std::string_view path) {
  return Collect(bytes, path, &VisitCyrusDb);
}

}  // namespace cyrsync::cyrus
