// Fuzzes the cyrus.index / cyrus.expunge reader (HOUSE-STYLE H5): the files may be corrupt.
//
// The input is a file image. Properties checked:
//  - ParseIndex and ParseIndexHeader never fail with anything but kCorruption, with and without
//    CRC verification;
//  - an accepted file has num_records records, and ParseIndexHeader (on the whole image and on
//    its first start_offset bytes) returns the same header;
//  - with every header and record CRC recomputed, verifying CRCs changes nothing: the parse
//    succeeds (or fails) exactly as it does without verification. This also lets the fuzzer
//    past the CRCs, which it could not forge.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/hash.h"
#include "cyrus/index.h"
#include "tests/fuzz/fuzz_util.h"

namespace cyrsync::cyrus {
namespace {

using fuzz::CheckCorruption;

bool SameHeader(const IndexHeader& a, const IndexHeader& b) {
  return a.generation_no == b.generation_no && a.format == b.format &&
         a.minor_version == b.minor_version && a.start_offset == b.start_offset &&
         a.record_size == b.record_size && a.num_records == b.num_records &&
         a.last_uid == b.last_uid && a.uidvalidity == b.uidvalidity && a.options == b.options &&
         a.exists == b.exists && a.highestmodseq == b.highestmodseq &&
         a.header_file_crc == b.header_file_crc && a.quota_mailbox_used == b.quota_mailbox_used;
}

bool SameRecord(const IndexRecord& a, const IndexRecord& b) {
  return a.uid == b.uid && a.internaldate == b.internaldate && a.size == b.size &&
         a.system_flags == b.system_flags && a.user_flags == b.user_flags && a.guid == b.guid &&
         a.modseq == b.modseq;
}

void PutBE32(std::string* b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*b)[off + i] = static_cast<char>(v >> (24 - 8 * i));
}

// Rewrites the trailing CRC32 of the header and of every whole record, using the sizes the
// file itself claims (the parser rejects sizes that disagree with the version anyway).
std::string FixCrcs(std::string_view in) {
  std::string b(in);
  if (b.size() < 24) return b;
  const uint64_t start = LoadBE32(b, 12), rsize = LoadBE32(b, 16);
  if (start < 4 || start > b.size() || rsize < 4 || rsize > 4096) return b;
  PutBE32(&b, start - 4, Crc32(std::string_view(b).substr(0, start - 4)));
  for (uint64_t off = start; off + rsize <= b.size(); off += rsize) {
    PutBE32(&b, off + rsize - 4, Crc32(std::string_view(b).substr(off, rsize - 4)));
  }
  return b;
}

// Parses bytes both ways and checks the invariants of an accepted file.
Result<IndexFile> ParseChecked(std::string_view bytes, bool verify_crc) {
  IndexParseOptions opts;
  opts.verify_crc = verify_crc;
  auto file = ParseIndex(bytes, "fuzz/cyrus.index", opts);
  auto header = ParseIndexHeader(bytes, "fuzz/cyrus.index", opts);
  if (!header.ok()) CheckCorruption(header.error(), "ParseIndexHeader");
  if (!file.ok()) {
    CheckCorruption(file.error(), "ParseIndex");
    return file;
  }
  const IndexHeader& h = file->header;
  FUZZ_CHECK(header.ok(), "ParseIndex accepted what ParseIndexHeader rejects");
  FUZZ_CHECK(SameHeader(h, *header), "ParseIndexHeader disagrees with ParseIndex");
  FUZZ_CHECK(file->records.size() == h.num_records, "record count != num_records");
  FUZZ_CHECK(uint64_t{h.start_offset} + uint64_t{h.num_records} * h.record_size <= bytes.size(),
             "records claimed beyond the end of the file");
  auto prefix = ParseIndexHeader(bytes.substr(0, h.start_offset), "fuzz/cyrus.index", opts);
  FUZZ_CHECK(prefix.ok() && SameHeader(h, *prefix), "the first start_offset bytes do not suffice");
  return file;
}

}  // namespace
}  // namespace cyrsync::cyrus

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cyrsync::cyrus;
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  (void)ParseChecked(in, true);
  (void)ParseChecked(in, false);

  const std::string fixed = FixCrcs(in);
  auto verified = ParseChecked(fixed, true);
  auto unverified = ParseChecked(fixed, false);
  FUZZ_CHECK(verified.ok() == unverified.ok(),
             "with correct CRCs, verification changed the outcome: " +
                 (verified.ok() ? unverified.error().ToString() : verified.error().ToString()));
  if (verified.ok()) {
    FUZZ_CHECK(SameHeader(verified->header, unverified->header), "headers differ");
    for (size_t i = 0; i < verified->records.size(); ++i) {
      FUZZ_CHECK(SameRecord(verified->records[i], unverified->records[i]),
                 "record " + std::to_string(i) + " differs");
    }
  }
  return 0;
}
