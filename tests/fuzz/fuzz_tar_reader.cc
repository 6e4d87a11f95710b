// Fuzzes the snapshot tar codec (HOUSE-STYLE H5): TarParser reads archive members at restore,
// so its input is untrusted; EncodeTarHeader is its writer.
//
// The input is a tar stream (ustar + PAX, no end-of-archive blocks, as the archive writes).
// Properties checked:
//  - parsing it whole and in arbitrary pieces (empty ones too) gives the same entries, data
//    and error; every step consumes at most what it was given and the parser always progresses;
//  - an entry's data adds up to its header's size, starts at a block boundary, and the parser is
//    at an entry boundary after each entry end;
//  - round trip: a header built from the input bytes, encoded with EncodeTarHeader, parses back
//    to the same name, kind, link target, size, mtime and mode (within the reader's range of
//    sizes and times, |v| <= 2^62).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "snapshot/tar.h"
#include "tests/fuzz/fuzz_util.h"

namespace cyrsync::snapshot {
namespace {

using fuzz::CheckCorruption;

struct Entry {
  TarHeader header;
  uint64_t data_offset = 0;
  std::string data;
  bool ended = false;
};

struct Parsed {
  std::vector<Entry> entries;
  std::string error;
};

bool SameHeader(const TarHeader& a, const TarHeader& b) {
  return a.name == b.name && a.kind == b.kind && a.link_target == b.link_target &&
         a.size == b.size && a.mtime == b.mtime && a.mode == b.mode;
}

Parsed Parse(const std::vector<std::string_view>& pieces) {
  TarParser p;
  Parsed out;
  uint64_t fed = 0;
  for (std::string_view in : pieces) {
    // Every byte is consumed within a bounded number of steps: a header or PAX block per 512
    // bytes, plus a few events per entry.
    size_t budget = 8 + 4 * in.size();
    do {
      FUZZ_CHECK(budget-- > 0, "TarParser makes no progress");
      auto step = p.Next(in);
      if (!step.ok()) {
        CheckCorruption(step.error(), "TarParser");
        out.error = step.error().ToString();
        return out;
      }
      FUZZ_CHECK(step->consumed <= in.size(), "TarParser consumed more than it was given");
      fed += step->consumed;
      FUZZ_CHECK(p.offset() == fed, "TarParser offset disagrees with the bytes consumed");
      switch (step->event) {
        case TarParser::Event::kNeedMore:
          break;
        case TarParser::Event::kHeader:
          FUZZ_CHECK(out.entries.empty() || out.entries.back().ended, "header inside an entry");
          FUZZ_CHECK(p.data_offset() % kTarBlockSize == 0, "entry data not block aligned");
          out.entries.push_back(Entry{p.header(), p.data_offset(), "", false});
          break;
        case TarParser::Event::kData:
          FUZZ_CHECK(!out.entries.empty() && !out.entries.back().ended, "data outside an entry");
          FUZZ_CHECK(step->data.size() == step->consumed && step->data.data() == in.data(),
                     "kData does not point at the consumed input");
          out.entries.back().data.append(step->data);
          FUZZ_CHECK(out.entries.back().data.size() <= out.entries.back().header.size,
                     "more data than the header's size");
          break;
        case TarParser::Event::kEntryEnd:
          FUZZ_CHECK(!out.entries.empty() && !out.entries.back().ended, "entry end twice");
          FUZZ_CHECK(out.entries.back().data.size() == out.entries.back().header.size,
                     "entry ended short of its size");
          FUZZ_CHECK(p.AtEntryBoundary(), "not at an entry boundary after an entry end");
          out.entries.back().ended = true;
          break;
      }
      // kNeedMore may leave input (after a PAX block); callers feed the rest, as we do.
      in.remove_prefix(step->consumed);
    } while (!in.empty());
  }
  // Drain a pending entry end (an empty entry reports it on the next call).
  auto last = p.Next("");
  if (!last.ok()) {
    out.error = last.error().ToString();
  } else if (last->event == TarParser::Event::kEntryEnd) {
    FUZZ_CHECK(!out.entries.empty() && !out.entries.back().ended, "entry end twice");
    out.entries.back().ended = true;
  }
  return out;
}

void CheckSplit(std::string_view in) {
  Parsed whole = Parse({in});
  Parsed split = Parse(fuzz::Pieces(in, 700));
  FUZZ_CHECK(whole.error == split.error,
             "split feeding changed the error: '" + whole.error + "' vs '" + split.error + "'");
  FUZZ_CHECK(whole.entries.size() == split.entries.size(), "split feeding changed the entries");
  for (size_t i = 0; i < whole.entries.size(); ++i) {
    const Entry& a = whole.entries[i];
    const Entry& b = split.entries[i];
    FUZZ_CHECK(SameHeader(a.header, b.header) && a.data_offset == b.data_offset &&
                   a.data == b.data && a.ended == b.ended,
               "split feeding changed entry " + std::to_string(i));
  }
}

constexpr int64_t kMaxValue = int64_t{1} << 62;

void CheckRoundTrip(std::string_view in) {
  FuzzedDataProvider fdp(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  TarHeader h;
  h.kind = fdp.ConsumeBool() ? EntryKind::kSymlink : EntryKind::kFile;
  h.mode = fdp.ConsumeIntegral<uint32_t>() & 07777;
  h.mtime = fdp.ConsumeIntegralInRange<int64_t>(-kMaxValue, kMaxValue);
  if (h.kind == EntryKind::kFile) {
    h.size = fdp.ConsumeBool() ? fdp.ConsumeIntegralInRange<uint64_t>(0, kMaxValue)
                               : fdp.ConsumeIntegralInRange<uint64_t>(0, 4096);
  }
  h.name = fdp.ConsumeRandomLengthString(400);
  if (h.kind == EntryKind::kSymlink) h.link_target = fdp.ConsumeRandomLengthString(400);

  auto enc = EncodeTarHeader(h);
  const bool valid = !h.name.empty() && h.name.find('\0') == std::string::npos &&
                     (h.kind == EntryKind::kFile ||
                      (!h.link_target.empty() && h.link_target.find('\0') == std::string::npos));
  FUZZ_CHECK(enc.ok() == valid,
             "EncodeTarHeader: accepted/rejected the wrong header: " + enc.status().ToString());
  if (!enc.ok()) {
    FUZZ_CHECK(enc.error().code() == Code::kInvalidArgument, enc.error().ToString());
    return;
  }
  FUZZ_CHECK(enc->size() % kTarBlockSize == 0, "encoded header not whole blocks");
  TarParser p;
  std::string_view rest = *enc;
  while (true) {
    auto step = p.Next(rest);
    FUZZ_CHECK(step.ok(), "our own header does not parse: " + step.status().ToString());
    rest.remove_prefix(step->consumed);
    if (step->event == TarParser::Event::kHeader) break;
    FUZZ_CHECK(!rest.empty(), "our own header ended without a kHeader event");
  }
  FUZZ_CHECK(rest.empty(), "bytes left after our own header");
  FUZZ_CHECK(SameHeader(p.header(), h), "header changed through EncodeTarHeader + TarParser: " +
                                            p.header().name + " vs " + h.name);
  FUZZ_CHECK(p.data_offset() == enc->size(), "data does not start after the header");
}

}  // namespace
}  // namespace cyrsync::snapshot

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  cyrsync::snapshot::CheckSplit(in);
  cyrsync::snapshot::CheckRoundTrip(in);
  return 0;
}
