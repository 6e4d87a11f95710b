// Fuzzes the gzip member framing of the snapshot archive (HOUSE-STYLE H5): archives are read
// back at restore and verify, so damaged or hostile members must be reported, never trusted.
//
// The input is an archive file: a concatenation of gzip members holding tar streams. It is
// walked member by member with InflateMember through a FileCursor with small reads, each
// member's output fed to a TarParser the way snapshot/archive_read.cc does. Properties checked:
//  - a member's outcome is consistent: ok members have a length and leave the cursor right
//    after it, and uncompressed counts what the sink received; failures are kCorruption naming
//    the member's offset;
//  - round trip: the input compressed with MemberDeflater (in pieces, at a level taken from the
//    input) inflates back to the input and the member ends exactly where the deflater stopped,
//    leaving the following bytes unconsumed.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "snapshot/gzip_member.h"
#include "snapshot/tar.h"
#include "tests/fuzz/fuzz_util.h"

namespace cyrsync::snapshot {
namespace {

using fuzz::CheckCorruption;

// Inflated bytes a member may produce before the sink stops it (inflate bombs stay cheap).
constexpr uint64_t kMaxOutput = uint64_t{4} << 20;

void WalkArchive(std::string_view in) {
  fuzz::MemFile file(in, "fuzz.tar.gz");
  auto inflater = MemberInflater::Create();
  FUZZ_CHECK(inflater.ok(), inflater.status().ToString());
  const size_t chunk = 1 + fuzz::Hash(in) % 512;
  FileCursor cursor(&file, 0, FileCursor::kNoLimit, chunk);
  while (cursor.offset() < in.size()) {
    const uint64_t start = cursor.offset();
    TarParser tar;
    bool tar_failed = false;
    uint64_t received = 0;
    MemberOutcome m =
        InflateMember(&cursor, inflater->get(), [&](std::string_view out) -> Result<SinkAction> {
          received += out.size();
          while (!tar_failed && !out.empty()) {
            auto step = tar.Next(out);
            if (!step.ok()) {
              CheckCorruption(step.error(), "TarParser");
              tar_failed = true;
              break;
            }
            FUZZ_CHECK(step->consumed <= out.size(), "TarParser consumed more than it was given");
            out.remove_prefix(step->consumed);
          }
          return received > kMaxOutput ? SinkAction::kStop : SinkAction::kContinue;
        });
    FUZZ_CHECK(m.offset == start, "member offset is not where it started");
    // A failed member may count output of its last inflate pass that the sink never saw.
    FUZZ_CHECK(m.status.ok() ? m.uncompressed == received : m.uncompressed >= received,
               "uncompressed disagrees with the bytes given to the sink");
    if (!m.status.ok()) {
      CheckCorruption(m.status, "InflateMember");
      FUZZ_CHECK(m.status.message().find("offset " + std::to_string(start)) != std::string::npos,
                 "member error does not name the member's offset: " + m.status.ToString());
      return;
    }
    if (m.stopped) return;
    FUZZ_CHECK(m.length > 0 && cursor.offset() == start + m.length,
               "cursor not right after the member");
  }
}

void RoundTrip(std::string_view in) {
  const int level = static_cast<int>(fuzz::Hash(in) % 10);
  auto deflater = MemberDeflater::Create(level);
  FUZZ_CHECK(deflater.ok(), deflater.status().ToString());
  for (std::string_view piece : fuzz::Pieces(in, 1000)) {
    Status st = (*deflater)->Add(piece);
    FUZZ_CHECK(st.ok(), st.ToString());
  }
  Status st = (*deflater)->Finish();
  FUZZ_CHECK(st.ok(), st.ToString());
  FUZZ_CHECK((*deflater)->total_in() == in.size(), "total_in != bytes added");
  const std::string member = (*deflater)->TakeOutput();
  const std::string stream = member + "next member";

  auto inflater = MemberInflater::Create();
  FUZZ_CHECK(inflater.ok(), inflater.status().ToString());
  std::string out;
  std::string_view rest = stream;
  bool ended = false;
  for (int rounds = 0; !ended; ++rounds) {
    FUZZ_CHECK(rounds < 100000, "inflate makes no progress");
    // Hand the inflater small windows of the stream to exercise partial input.
    auto step = (*inflater)->Next(rest.substr(0, 1 + rounds % 97));
    FUZZ_CHECK(step.ok(), "our own member does not inflate: " + step.status().ToString());
    out.append(step->output);
    rest.remove_prefix(step->consumed);
    ended = step->member_end;
  }
  FUZZ_CHECK(out == in, "round trip changed the data");
  FUZZ_CHECK(rest == "next member", "inflater did not stop at the member's end");
  FUZZ_CHECK((*inflater)->total_in() == member.size() && (*inflater)->total_out() == in.size(),
             "inflater totals are wrong");
}

}  // namespace
}  // namespace cyrsync::snapshot

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  cyrsync::snapshot::WalkArchive(in);
  cyrsync::snapshot::RoundTrip(in);
  return 0;
}
