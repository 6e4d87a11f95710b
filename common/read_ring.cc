#include "common/read_ring.h"

#include <liburing.h>

#include <cerrno>
#include <cstring>

namespace cyrsync {

struct ReadRing::Ring {
  io_uring ring;
};

std::unique_ptr<ReadRing> ReadRing::Create(unsigned depth) {
  auto r = std::make_unique<Ring>();
  if (io_uring_queue_init(depth, &r->ring, 0) < 0) return nullptr;
  return std::unique_ptr<ReadRing>(new ReadRing(std::move(r), depth));
}

ReadRing::ReadRing(std::unique_ptr<Ring> ring, unsigned depth)
    : ring_(std::move(ring)), depth_(depth) {}

ReadRing::~ReadRing() {
  // Buffers of reads still in flight belong to the caller, who must wait for them first.
  io_uring_queue_exit(&ring_->ring);
}

void ReadRing::Queue(int fd, char* buf, size_t len, uint64_t tag) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);  // never null: in_flight_ < depth_
  io_uring_prep_read(sqe, fd, buf, static_cast<unsigned>(len), 0);
  io_uring_sqe_set_data64(sqe, tag);
  ++in_flight_;
  ++queued_;
}

Status ReadRing::Submit() {
  while (queued_ > 0) {
    int n = io_uring_submit(&ring_->ring);
    if (n == -EINTR) continue;
    // EAGAIN and EBUSY included: the caller falls back to pread instead of spinning.
    if (n < 0) return IOError(std::string("io_uring submit: ") + std::strerror(-n));
    if (n == 0) return IOError("io_uring submit: the kernel took no read");
    queued_ -= static_cast<unsigned>(n);
  }
  return Status::Ok();
}

Result<ReadRing::Completion> ReadRing::Wait() {
  io_uring_cqe* cqe = nullptr;
  int rc;
  do {
    rc = io_uring_wait_cqe(&ring_->ring, &cqe);
  } while (rc == -EINTR);
  if (rc < 0) return IOError(std::string("io_uring wait: ") + std::strerror(-rc));
  Completion c{io_uring_cqe_get_data64(cqe), cqe->res};
  io_uring_cqe_seen(&ring_->ring, cqe);
  --in_flight_;
  return c;
}

}  // namespace cyrsync
