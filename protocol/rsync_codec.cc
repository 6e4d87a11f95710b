#include "protocol/rsync_codec.h"

#include <librsync.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace cyrsync::protocol {

struct RsyncJob::Impl {
  rs_job_t* job = nullptr;
  rs_signature_t* sumset = nullptr;
  ReadableFile* basis = nullptr;
  uint64_t basis_size = 0;
  Status copy_error;
  std::vector<char> copy_buf;
  ~Impl() {
    if (job) rs_job_free(job);
    if (sumset) rs_free_sumset(sumset);
  }
};

namespace {

Status RsError(const char* what, rs_result r) {
  return CorruptionError(std::string("rsync ") + what + ": " + rs_strerror(r));
}

// librsync asks for basis bytes [pos, pos+len); the delta that drives it is untrusted.
rs_result CopyFromBasis(void* opaque, rs_long_t pos, size_t* len, void** buf) {
  auto* impl = static_cast<RsyncJob::Impl*>(opaque);
  if (pos < 0 || static_cast<uint64_t>(pos) >= impl->basis_size || *len == 0) {
    impl->copy_error = CorruptionError("rsync delta copies outside the basis at offset " +
                                       std::to_string(pos));
    return RS_CORRUPT;
  }
  size_t want = std::min<uint64_t>(*len, impl->basis_size - static_cast<uint64_t>(pos));
  impl->copy_buf.resize(want);
  auto n = impl->basis->ReadAt(static_cast<uint64_t>(pos),
                               std::span<char>(impl->copy_buf.data(), want));
  if (!n.ok() || *n == 0) {
    impl->copy_error = n.ok() ? CorruptionError("basis shrank under the patch") : n.error();
    return RS_IO_ERROR;
  }
  *len = *n;
  *buf = impl->copy_buf.data();
  return RS_DONE;
}

}  // namespace

RsyncJob::RsyncJob(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RsyncJob::~RsyncJob() = default;

Result<std::unique_ptr<RsyncJob>> RsyncJob::Signature(uint64_t basis_size) {
  rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
  size_t block_len = 0, strong_len = 0;
  rs_result r = rs_sig_args(static_cast<rs_long_t>(basis_size), &magic, &block_len, &strong_len);
  if (r != RS_DONE) return RsError("signature arguments", r);
  auto impl = std::make_unique<Impl>();
  impl->job = rs_sig_begin(block_len, strong_len, magic);
  return std::unique_ptr<RsyncJob>(new RsyncJob(std::move(impl)));
}

Result<std::unique_ptr<RsyncJob>> RsyncJob::Delta(std::string_view signature) {
  auto impl = std::make_unique<Impl>();
  rs_job_t* load = rs_loadsig_begin(&impl->sumset);
  std::string sig(signature);
  rs_buffers_t b{sig.data(), sig.size(), 1, nullptr, 0};
  rs_result r = rs_job_iter(load, &b);
  rs_job_free(load);
  if (r != RS_DONE) return RsError("signature", r);
  r = rs_build_hash_table(impl->sumset);
  if (r != RS_DONE) return RsError("signature index", r);
  impl->job = rs_delta_begin(impl->sumset);
  return std::unique_ptr<RsyncJob>(new RsyncJob(std::move(impl)));
}

Result<std::unique_ptr<RsyncJob>> RsyncJob::Patch(ReadableFile* basis, uint64_t basis_size) {
  auto impl = std::make_unique<Impl>();
  impl->basis = basis;
  impl->basis_size = basis_size;
  impl->job = rs_patch_begin(&CopyFromBasis, impl.get());
  return std::unique_ptr<RsyncJob>(new RsyncJob(std::move(impl)));
}

Result<bool> RsyncJob::Feed(std::string_view in, bool eof, std::string* out) {
  // librsync never writes through next_in; its API just lacks the const.
  rs_buffers_t b{const_cast<char*>(in.data()), in.size(), eof ? 1 : 0, nullptr, 0};
  char buf[1 << 16];
  while (true) {
    b.next_out = buf;
    b.avail_out = sizeof(buf);
    rs_result r = rs_job_iter(impl_->job, &b);
    out->append(buf, sizeof(buf) - b.avail_out);
    if (r == RS_DONE) return true;
    if (r != RS_BLOCKED) {
      if (!impl_->copy_error.ok()) return impl_->copy_error;
      return RsError("job", r);
    }
    bool produced = b.avail_out < sizeof(buf);
    if (b.avail_in == 0 && !produced) {
      if (eof) return CorruptionError("rsync input ended early");
      return false;
    }
  }
}

Result<std::string> RunRsyncJob(RsyncJob& job, std::string_view input) {
  std::string out;
  ASSIGN_OR_RETURN(bool done, job.Feed(input, true, &out));
  if (!done) return CorruptionError("rsync job did not finish");
  return out;
}

Result<std::string> FileSignature(ReadableFile& file) {
  ASSIGN_OR_RETURN(FileStat st, file.Stat());
  ASSIGN_OR_RETURN(auto job, RsyncJob::Signature(st.size));
  // Uninitialized and no larger than the file: a folder's cyrus.cache is typically a few hundred
  // KiB, and zeroing a fresh 1 MiB buffer for each signature showed in the daemon's profile.
  const size_t len = static_cast<size_t>(std::min<uint64_t>(uint64_t{1} << 20, st.size + 1));
  std::unique_ptr<char[]> chunk(new char[len]);
  std::string out;
  uint64_t off = 0;
  while (true) {
    ASSIGN_OR_RETURN(size_t n, file.ReadAt(off, std::span<char>(chunk.get(), len)));
    off += n;
    ASSIGN_OR_RETURN(bool done, job->Feed(std::string_view(chunk.get(), n), n == 0, &out));
    if (done) return out;
    if (n == 0) return CorruptionError("rsync signature did not finish");
  }
}

}  // namespace cyrsync::protocol
