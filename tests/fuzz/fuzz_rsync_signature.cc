// Fuzzes RsyncJob::Delta's signature loading (HOUSE-STYLE H5): the syncer computes deltas
// against the signature a replica sends in reply to GET_SIGNATURE, and a compromised replica is
// as hostile as a compromised source.
//
// The input is a librsync signature. Properties checked: a rejected signature is kCorruption;
// an accepted one yields a delta job that runs to completion over new data fed in pieces (or
// fails with kCorruption), and when the signature is the basis's own (in either format), that
// delta patches the basis back into the new data.
#include <librsync.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "protocol/rsync_codec.h"
#include "tests/fuzz/fuzz_util.h"

namespace cyrsync::protocol {
namespace {

using fuzz::CheckCorruption;

// The file the seed signatures describe (tests/fuzz/make_corpus.py), and new data sharing most
// of its blocks.
std::string NumberedLines(int from, int to) {
  std::string b;
  for (int i = from; i < to; ++i) {
    char line[64];
    std::snprintf(line, sizeof(line), "%04d The quick brown fox jumps over the lazy dog.\n", i);
    b += line;
  }
  return b;
}

// The basis's signature in librsync's older rollsum + BLAKE2 format (RsyncJob writes the
// Rabin-Karp one), with 256-byte blocks and 32-byte strong sums: the form of the
// "blake2-basis" seed.
std::string Blake2Signature(const std::string& data) {
  rs_job_t* job = rs_sig_begin(256, 32, RS_BLAKE2_SIG_MAGIC);
  std::string in(data), out(data.size() + 1024, '\0');
  rs_buffers_t b{in.data(), in.size(), 1, out.data(), out.size()};
  rs_result r = RS_BLOCKED;
  for (int i = 0; i < 100 && r == RS_BLOCKED; ++i) r = rs_job_iter(job, &b);
  rs_job_free(job);
  FUZZ_CHECK(r == RS_DONE, std::string("signature of the basis: ") + rs_strerror(r));
  out.resize(out.size() - b.avail_out);
  return out;
}

void CheckDelta(std::string_view signature) {
  static const std::string basis = NumberedLines(0, 60);
  static const std::string target = NumberedLines(0, 20) + "a new line\n" + NumberedLines(25, 70);
  auto job = RsyncJob::Delta(signature);
  if (!job.ok()) {
    CheckCorruption(job.error(), "RsyncJob::Delta");
    return;
  }
  std::string delta;
  for (std::string_view p : fuzz::Pieces(target, 500)) {
    auto r = (*job)->Feed(p, false, &delta);
    if (!r.ok()) {
      CheckCorruption(r.error(), "delta Feed");
      return;
    }
  }
  auto done = (*job)->Feed("", true, &delta);
  if (!done.ok()) {
    CheckCorruption(done.error(), "delta Feed (eof)");
    return;
  }
  FUZZ_CHECK(*done, "delta job did not finish at eof");

  fuzz::MemFile f(basis);
  static const std::string rk = [&] {
    auto sig = FileSignature(f);
    FUZZ_CHECK(sig.ok(), sig.status().ToString());
    return *sig;
  }();
  static const std::string blake2 = Blake2Signature(basis);
  if (signature != rk && signature != blake2) return;
  auto patch = RsyncJob::Patch(&f, basis.size());
  FUZZ_CHECK(patch.ok(), patch.status().ToString());
  auto out = RunRsyncJob(**patch, delta);
  FUZZ_CHECK(out.ok() && *out == target, "delta against the basis's signature does not patch back");
}

}  // namespace
}  // namespace cyrsync::protocol

// librsync reports every rejected input on stderr; the fuzzer rejects thousands a second.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  rs_trace_set_level(RS_LOG_EMERG);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cyrsync::protocol::CheckDelta(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
