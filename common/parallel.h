// Runs independent, I/O-bound steps (stats of many files) on a few threads. With a cold page
// cache a stat waits for an inode read; several in flight let the disk queue them instead of
// paying one seek at a time.
#pragma once

#include <cstddef>
#include <functional>

namespace cyrsync {

// Calls fn(i) once for every i in [0, n), on up to `threads` threads (the caller's included),
// in batches of `batch` consecutive indexes; returns when every call has returned. fn must be
// safe to call concurrently for different i. threads <= 1 or a small n runs inline.
void ParallelFor(size_t n, int threads, const std::function<void(size_t)>& fn, size_t batch = 32);

}  // namespace cyrsync
