// Fuzzes RsyncJob::Patch (HOUSE-STYLE H5): DELTA_DATA bytes come from the peer, and our copy
// callback must bounds-check every (pos, len) librsync asks of the basis.
//
// A fixed basis of kBasisSize bytes is patched with the input as the delta. Properties checked:
//  - the delta fed whole and in pieces (as DELTA_DATA frames arrive) gives the same outcome and
//    the same output; rejects are kCorruption;
//  - round trip: new data built from the input as an edit script over the basis (copies of basis
//    ranges and literal bytes), delta'd against the basis's signature and patched onto the
//    basis, gives the new data back.
#include <fuzzer/FuzzedDataProvider.h>
#include <librsync.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/rsync_codec.h"
#include "tests/fuzz/fuzz_util.h"

namespace cyrsync::protocol {
namespace {

using fuzz::CheckCorruption;

// The basis the seed corpus was written against (tests/fuzz/make_corpus.py): 60 numbered lines.
const std::string& Basis() {
  static const std::string basis = [] {
    std::string b;
    for (int i = 0; i < 60; ++i) {
      char line[64];
      std::snprintf(line, sizeof(line), "%04d The quick brown fox jumps over the lazy dog.\n", i);
      b += line;
    }
    return b;
  }();
  return basis;
}

const std::string& BasisSignature() {
  static const std::string sig = [] {
    fuzz::MemFile f(Basis());
    auto s = FileSignature(f);
    FUZZ_CHECK(s.ok(), s.status().ToString());
    return *s;
  }();
  return sig;
}

// Runs a patch of the basis over the given delta pieces, then signals eof. Feeding stops when
// the job reports it finished (the delta's END command): bytes after it are not fed, because a
// finished librsync job rejects further input while the bytes after END in the same Feed call
// are silently dropped, so feeding on would make the outcome depend on where the pieces split.
Result<std::string> Patch(const std::vector<std::string_view>& pieces) {
  fuzz::MemFile basis(Basis());
  ASSIGN_OR_RETURN(auto job, RsyncJob::Patch(&basis, Basis().size()));
  std::string out;
  bool done = false;
  for (size_t i = 0; i < pieces.size() && !done; ++i) {
    ASSIGN_OR_RETURN(done, job->Feed(pieces[i], false, &out));
  }
  if (!done) {
    ASSIGN_OR_RETURN(done, job->Feed("", true, &out));
    FUZZ_CHECK(done, "Feed at eof returned neither done nor an error");
  }
  return out;
}

void CheckPatch(std::string_view delta) {
  auto whole = Patch({delta});
  auto split = Patch(fuzz::Pieces(delta, 64));
  if (!whole.ok()) CheckCorruption(whole.error(), "RsyncJob::Patch");
  if (!split.ok()) CheckCorruption(split.error(), "RsyncJob::Patch (split)");
  FUZZ_CHECK(whole.ok() == split.ok(),
             "split feeding changed the outcome: " + whole.status().ToString() + " vs " +
                 split.status().ToString());
  if (whole.ok()) FUZZ_CHECK(*whole == *split, "split feeding changed the output");
}

// New data: the input read as commands, each either a copy of a basis range or literal bytes.
std::string EditScript(std::string_view in) {
  FuzzedDataProvider fdp(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  const std::string& basis = Basis();
  std::string out;
  while (fdp.remaining_bytes() > 0 && out.size() < (size_t{64} << 10)) {
    if (fdp.ConsumeBool()) {
      size_t pos = fdp.ConsumeIntegralInRange<size_t>(0, basis.size() - 1);
      size_t len = fdp.ConsumeIntegralInRange<size_t>(1, basis.size() - pos);
      out.append(basis, pos, len);
    } else {
      out += fdp.ConsumeBytesAsString(fdp.ConsumeIntegralInRange<size_t>(0, 64));
    }
  }
  return out;
}

void CheckRoundTrip(std::string_view in) {
  const std::string target = EditScript(in);
  auto job = RsyncJob::Delta(BasisSignature());
  FUZZ_CHECK(job.ok(), job.status().ToString());
  std::string delta;
  for (std::string_view p : fuzz::Pieces(target, 300)) {
    auto r = (*job)->Feed(p, false, &delta);
    FUZZ_CHECK(r.ok(), "delta failed: " + r.status().ToString());
  }
  auto done = (*job)->Feed("", true, &delta);
  FUZZ_CHECK(done.ok() && *done, "delta did not finish: " + done.status().ToString());
  auto patched = Patch(fuzz::Pieces(delta, 100));
  FUZZ_CHECK(patched.ok(), "patch of our own delta failed: " + patched.status().ToString());
  FUZZ_CHECK(*patched == target, "round trip changed the data (" + std::to_string(target.size()) +
                                     " bytes in, " + std::to_string(patched->size()) + " out)");
}

}  // namespace
}  // namespace cyrsync::protocol

// librsync reports every rejected input on stderr; the fuzzer rejects thousands a second.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  rs_trace_set_level(RS_LOG_EMERG);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  cyrsync::protocol::CheckPatch(in);
  cyrsync::protocol::CheckRoundTrip(in);
  return 0;
}
