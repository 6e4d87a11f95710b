// A sans-I/O driver for librsync jobs: signature of a basis, delta of new data against a
// signature, and patch of a basis with a delta. Bytes go in and out through Feed(); the basis of
// a patch is read through the caller's ReadableFile, and every (pos, len) librsync asks for is
// bounds-checked against the basis size (delta bytes come from the peer: untrusted).
// One job per object; thread-compatible.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"

namespace cyrsync::protocol {

class RsyncJob {
 public:
  ~RsyncJob();
  RsyncJob(const RsyncJob&) = delete;
  RsyncJob& operator=(const RsyncJob&) = delete;

  // Signature of a basis of basis_size bytes (block and strong sizes chosen by librsync).
  static Result<std::unique_ptr<RsyncJob>> Signature(uint64_t basis_size);
  // Delta of new data against a complete signature. kCorruption on a malformed signature.
  static Result<std::unique_ptr<RsyncJob>> Delta(std::string_view signature);
  // Patch of basis (basis_size bytes, must stay alive and unchanged) with delta input.
  static Result<std::unique_ptr<RsyncJob>> Patch(ReadableFile* basis, uint64_t basis_size);

  // Feeds input (eof marks its last piece) and appends the produced output to *out. Returns
  // true when the job finished. kCorruption when librsync rejects the input (for a patch: a
  // malformed delta or a copy outside the basis).
  Result<bool> Feed(std::string_view in, bool eof, std::string* out);

  struct Impl;  // librsync state; defined in rsync_codec.cc

 private:
  explicit RsyncJob(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Runs a whole job over in-memory input.
Result<std::string> RunRsyncJob(RsyncJob& job, std::string_view input);
// Signature of a whole file.
Result<std::string> FileSignature(ReadableFile& file);

}  // namespace cyrsync::protocol
