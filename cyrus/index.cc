#include "cyrus/index.h"

#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/hash.h"

namespace cyrsync::cyrus {

std::string IndexRecord::GuidHex() const {
  return HexEncode(std::string_view(reinterpret_cast<const char*>(guid.data()), guid.size()));
}

namespace internal {
namespace {

// Where one minor version keeps the fields we expose (cyrus-formats.md §4.1, §4.2). Offsets
// of -1 mean "not in this version". Fields not listed sit at the same place in v6-v19.
struct IndexLayout {
  uint32_t minor;
  uint32_t header_size;
  uint32_t record_size;
  bool v20;  // 64-bit nanosecond times and the v20 rearrangement of header and record
  bool has_crc;
  int h_options;
  int h_exists;
  int h_highestmodseq;
  int h_header_file_crc;
  int r_guid;
  int r_modseq;
};

// One row per version Cyrus 3.x can find on disk. v11 and v18 never shipped in a release.
constexpr IndexLayout kLayouts[] = {
    // minor hdr  rec   v20    crc    opts exists hms  hfcrc guid modseq
    {6, 76, 60, false, false, 60, -1, -1, -1, -1, -1},
    {7, 76, 72, false, false, 60, -1, -1, -1, -1, -1},
    {8, 92, 80, false, false, 60, -1, 68, -1, -1, 72},
    {9, 96, 80, false, false, 60, -1, 68, -1, -1, 72},
    {10, 96, 88, false, false, 60, -1, 68, -1, 60, 80},
    {12, 128, 96, false, true, 60, 84, 68, 96, 60, 80},
    {13, 128, 104, false, true, 60, 84, 68, 96, 60, 80},
    {14, 160, 104, false, true, 60, 84, 68, 96, 60, 80},
    {15, 160, 104, false, true, 60, 84, 68, 96, 60, 80},
    {16, 160, 112, false, true, 60, 84, 68, 96, 60, 80},
    {17, 160, 112, false, true, 60, 84, 68, 96, 60, 80},
    {19, 160, 112, false, true, 64, 60, 72, 96, 60, 80},
    {20, 192, 144, true, true, 64, 60, 72, 96, 60, 80},
};

// The fixed prefix every version shares: generation, format, minor, start_offset,
// record_size (and num_records, which we read together with the rest).
constexpr size_t kMinPrefix = 24;
constexpr uint64_t kNanosPerSecond = 1000000000;

const IndexLayout* FindLayout(uint32_t minor) {
  for (const IndexLayout& l : kLayouts) {
    if (l.minor == minor) return &l;
  }
  return nullptr;
}

Status Corrupt(std::string_view path, const std::string& what, uint64_t offset) {
  return CorruptionError(std::string(path) + ": " + what + " at offset " + std::to_string(offset));
}

Status RecordCorrupt(std::string_view path, uint64_t n, uint64_t offset, const std::string& what) {
  return CorruptionError(std::string(path) + ": record " + std::to_string(n) + " at offset " +
                         std::to_string(offset) + ": " + what);
}

std::string Hex32(uint32_t v) {
  static const char* kHex = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) s.push_back(kHex[(v >> shift) & 0xf]);
  return s;
}

// v12+: the last 4 bytes of a header or record hold CRC32 of everything before them.
std::optional<std::string> CheckTrailingCrc(std::string_view block) {
  size_t crc_off = block.size() - 4;
  uint32_t stored = LoadBE32(block, crc_off);
  uint32_t computed = Crc32(block.substr(0, crc_off));
  if (stored == computed) return std::nullopt;
  return "CRC mismatch (stored " + Hex32(stored) + ", computed " + Hex32(computed) + ")";
}

uint32_t OptBE32(std::string_view b, int off) {
  return off < 0 ? 0 : LoadBE32(b, static_cast<size_t>(off));
}
uint64_t OptBE64(std::string_view b, int off) {
  return off < 0 ? 0 : LoadBE64(b, static_cast<size_t>(off));
}

// REQUIRES: hdr.size() == layout.header_size.
IndexHeader DecodeHeader(std::string_view hdr, const IndexLayout& l) {
  IndexHeader h;
  h.generation_no = LoadBE32(hdr, 0);
  h.format = LoadBE32(hdr, 4);
  h.minor_version = LoadBE32(hdr, 8);
  h.start_offset = LoadBE32(hdr, 12);
  h.record_size = LoadBE32(hdr, 16);
  h.num_records = LoadBE32(hdr, 20);
  // v20 widened the appenddate at 24, pushing last_uid/uidvalidity to 88/92.
  h.last_uid = LoadBE32(hdr, l.v20 ? 88 : 28);
  h.uidvalidity = LoadBE32(hdr, l.v20 ? 92 : 44);
  h.quota_mailbox_used = LoadBE64(hdr, 32);
  h.options = OptBE32(hdr, l.h_options);
  // Before v12 the file held no expunged records, so every record exists.
  h.exists = l.h_exists < 0 ? h.num_records : OptBE32(hdr, l.h_exists);
  h.highestmodseq = OptBE64(hdr, l.h_highestmodseq);
  h.header_file_crc = OptBE32(hdr, l.h_header_file_crc);
  return h;
}

// REQUIRES: rec.size() == layout.record_size.
IndexRecord DecodeRecord(std::string_view rec, const IndexLayout& l) {
  IndexRecord r;
  r.uid = LoadBE32(rec, 0);
  if (l.v20) {
    r.internaldate = static_cast<int64_t>(LoadBE64(rec, 8) / kNanosPerSecond);
    r.size = LoadBE64(rec, 24);
  } else {
    r.internaldate = LoadBE32(rec, 4);  // unsigned 32-bit seconds before v20
    r.size = LoadBE32(rec, 12);
  }
  size_t flags_off = l.v20 ? 36 : 32;
  r.system_flags = LoadBE32(rec, flags_off);
  for (size_t i = 0; i < r.user_flags.size(); ++i) {
    r.user_flags[i] = LoadBE32(rec, flags_off + 4 + 4 * i);
  }
  if (l.r_guid >= 0) {
    for (size_t i = 0; i < r.guid.size(); ++i) {
      r.guid[i] = static_cast<uint8_t>(rec[static_cast<size_t>(l.r_guid) + i]);
    }
  }
  r.modseq = OptBE64(rec, l.r_modseq);
  return r;
}

// Checks the version and the sizes it implies; returns the layout to decode with.
Result<const IndexLayout*> CheckPrefix(std::string_view bytes, std::string_view path) {
  if (bytes.size() < kMinPrefix) {
    return Corrupt(path,
                   "truncated header (" + std::to_string(bytes.size()) + " bytes, need at least " +
                       std::to_string(kMinPrefix) + ")",
                   bytes.size());
  }
  uint32_t minor = LoadBE32(bytes, 8);
  const IndexLayout* l = FindLayout(minor);
  if (l == nullptr) return Corrupt(path, "unsupported minor version " + std::to_string(minor), 8);
  // Cyrus always writes the template sizes; anything else means we would misread fields.
  uint32_t start = LoadBE32(bytes, 12);
  if (start != l->header_size) {
    return Corrupt(path,
                   "start_offset " + std::to_string(start) + " disagrees with minor version " +
                       std::to_string(minor) + " (expected " + std::to_string(l->header_size) + ")",
                   12);
  }
  uint32_t rsize = LoadBE32(bytes, 16);
  if (rsize != l->record_size) {
    return Corrupt(path,
                   "record_size " + std::to_string(rsize) + " disagrees with minor version " +
                       std::to_string(minor) + " (expected " + std::to_string(l->record_size) + ")",
                   16);
  }
  return l;
}

struct ParsedHeader {
  IndexHeader header;
  const IndexLayout* layout;
};

Result<ParsedHeader> ParseHeaderBlock(std::string_view bytes, std::string_view path,
                                      const IndexParseOptions& opts) {
  ASSIGN_OR_RETURN(const IndexLayout* l, CheckPrefix(bytes, path));
  if (bytes.size() < l->header_size) {
    return Corrupt(path,
                   "truncated header (" + std::to_string(bytes.size()) + " of " +
                       std::to_string(l->header_size) + " bytes)",
                   bytes.size());
  }
  std::string_view hdr = bytes.substr(0, l->header_size);
  if (l->has_crc && opts.verify_crc) {
    if (auto bad = CheckTrailingCrc(hdr)) return Corrupt(path, "header " + *bad, hdr.size() - 4);
  }
  return ParsedHeader{DecodeHeader(hdr, *l), l};
}

// num_records comes from disk: check the whole record area fits before allocating for it.
Status CheckRecordArea(std::string_view bytes, std::string_view path, const IndexHeader& h) {
  uint64_t need = uint64_t{h.start_offset} + uint64_t{h.num_records} * h.record_size;
  if (need <= bytes.size()) return Status::Ok();
  uint64_t first_missing = (bytes.size() - h.start_offset) / h.record_size + 1;
  uint64_t offset = h.start_offset + (first_missing - 1) * h.record_size;
  return RecordCorrupt(path, first_missing, offset,
                       "truncated (num_records " + std::to_string(h.num_records) +
                           " at offset 20 needs " + std::to_string(need) + " bytes, file has " +
                           std::to_string(bytes.size()) + ")");
}

}  // namespace
}  // namespace internal

Result<IndexHeader> ParseIndexHeader(std::string_view bytes, std::string_view path,
                                     const IndexParseOptions& opts) {
  ASSIGN_OR_RETURN(internal::ParsedHeader p, internal::ParseHeaderBlock(bytes, path, opts));
  return p.header;
}

Result<IndexFile> ParseIndex(std::string_view bytes, std::string_view path,
                             const IndexParseOptions& opts) {
  ASSIGN_OR_RETURN(internal::ParsedHeader p, internal::ParseHeaderBlock(bytes, path, opts));
  const IndexHeader& h = p.header;
  RETURN_IF_ERROR(internal::CheckRecordArea(bytes, path, h));
  IndexFile file;
  file.header = h;
  file.records.reserve(h.num_records);
  // Bytes past the last record are ignored, as Cyrus does: only num_records is authoritative.
  for (uint64_t n = 1; n <= h.num_records; ++n) {
    uint64_t offset = h.start_offset + (n - 1) * h.record_size;
    std::string_view rec = bytes.substr(offset, h.record_size);
    if (p.layout->has_crc && opts.verify_crc) {
      if (auto bad = internal::CheckTrailingCrc(rec)) {
        return internal::RecordCorrupt(path, n, offset, *bad);
      }
    }
    file.records.push_back(internal::DecodeRecord(rec, *p.layout));
  }
  return file;
}

}  // namespace cyrsync::cyrus
