// Fuzzes the Cyrus key/value database readers: twoskip, skiplist and flat (HOUSE-STYLE H5).
//
// The input is a database image. It goes to ReadCyrusDb and to each reader directly; then, so
// the fuzzer gets past the magics and the twoskip header CRC (which it could not forge), once
// more with the twoskip magic and a recomputed header CRC, and with the skiplist magic.
// Properties checked: rejects are kCorruption (skiplist may also say kFailedPrecondition: an
// uncommitted transaction needs Cyrus's recovery); ReadCyrusDb returns what the reader of the
// detected format returns; flat records written back with Cyrus's escaping read back the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/hash.h"
#include "cyrus/cyrusdb.h"
#include "tests/fuzz/fuzz_util.h"

namespace cyrsync::cyrus {
namespace {

using fuzz::CheckCorruption;

constexpr std::string_view kTwoskipMagic("\xa1\x02\x8b\x0dtwoskip file\0\0\0\0", 20);
constexpr std::string_view kSkiplistMagic("\xa1\x02\x8b\x0dskiplist file\0\0\0", 20);

Result<KvList> Checked(Result<KvList> r, std::string_view what) {
  if (!r.ok() && !(what == "ReadSkiplist" && r.error().code() == Code::kFailedPrecondition)) {
    CheckCorruption(r.error(), what);
  }
  return r;
}

// Escaping as Cyrus's flat backend writes it: NUL, TAB, CR, LF and 0xFF become 0xFF, c | 0x80.
std::string FlatEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\0' || c == '\t' || c == '\n' || c == '\r' || c == '\xff') {
      out.push_back('\xff');
      out.push_back(static_cast<char>(c | 0x80));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void CheckAll(std::string_view b) {
  auto ts = Checked(ReadTwoskip(b, "fuzz.db"), "ReadTwoskip");
  auto sl = Checked(ReadSkiplist(b, "fuzz.db"), "ReadSkiplist");
  auto flat = Checked(ReadFlat(b, "fuzz.db"), "ReadFlat");
  auto any = ReadCyrusDb(b, "fuzz.db");
  const Result<KvList>* same = nullptr;
  switch (DetectDbFormat(b)) {
    case DbFormat::kTwoskip:
      same = &ts;
      break;
    case DbFormat::kSkiplist:
      same = &sl;
      break;
    case DbFormat::kFlat:
      same = &flat;
      break;
    case DbFormat::kUnknown:
      FUZZ_CHECK(!any.ok(), "ReadCyrusDb accepted an unknown format");
      CheckCorruption(any.error(), "ReadCyrusDb");
      break;
  }
  if (same != nullptr) {
    FUZZ_CHECK(any.ok() == same->ok(), "ReadCyrusDb disagrees with the format's reader");
    if (any.ok()) FUZZ_CHECK(*any == **same, "ReadCyrusDb returned other records");
  }
  if (flat.ok()) {
    std::string again;
    for (const auto& [k, v] : *flat) again += FlatEscape(k) + "\t" + FlatEscape(v) + "\n";
    auto reread = ReadFlat(again, "fuzz.db");
    FUZZ_CHECK(reread.ok() && *reread == *flat, "flat records do not survive a rewrite");
  }
}

}  // namespace
}  // namespace cyrsync::cyrus

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cyrsync::cyrus;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  CheckAll(in);
  if (in.size() >= 64) {
    std::string ts(in);
    ts.replace(0, kTwoskipMagic.size(), kTwoskipMagic);
    uint32_t crc = cyrsync::Crc32(std::string_view(ts).substr(0, 60));
    for (int i = 0; i < 4; ++i) ts[60 + i] = static_cast<char>(crc >> (24 - 8 * i));
    CheckAll(ts);
  }
  if (in.size() >= 48) {
    std::string sl(in);
    sl.replace(0, kSkiplistMagic.size(), kSkiplistMagic);
    CheckAll(sl);
  }
  return 0;
}
