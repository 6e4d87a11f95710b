// A set of message GUIDs (20-byte SHA-1s) in one flat table: open addressing with linear
// probing. A lookup costs one cache
// miss, where std::unordered_set costs a bucket and a node; at a million GUIDs the node-based
// set was 5 % of a first snapshot's client main thread (bench/README.md, session 11).
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/hash.h"

namespace cyrsync::snapshot {

using Guid = Sha1Digest;  // a message GUID is the SHA-1 of its file

class GuidSet {
 public:
  bool contains(const Guid& g) const {
    if (IsZero(g)) return has_zero_;
    if (slots_.empty()) return false;
    for (size_t i = Home(g);; i = (i + 1) & mask()) {
      if (slots_[i] == g) return true;
      if (IsZero(slots_[i])) return false;
    }
  }

  // True when g was not in the set.
  bool insert(const Guid& g) {
    if (IsZero(g)) {
      const bool added = !has_zero_;
      has_zero_ = true;
      size_ += added;
      return added;
    }
    if ((size_ + 1) * 10 > slots_.size() * 7) Grow();  // load at most 0.7
    for (size_t i = Home(g);; i = (i + 1) & mask()) {
      if (slots_[i] == g) return false;
      if (IsZero(slots_[i])) {
        slots_[i] = g;
        ++size_;
        return true;
      }
    }
  }

  size_t size() const { return size_; }

 private:
  static bool IsZero(const Guid& g) { return g == Guid{}; }  // an all-zero slot is empty
  size_t mask() const { return slots_.size() - 1; }
  // All 20 bytes, mixed: real GUIDs are uniform already, but an index whose GUIDs are not
  // SHA-1s (zero-padded, sharing a prefix) must not pile up in one run of slots.
  size_t Home(const Guid& g) const {
    uint64_t a, b;
    uint32_t c;
    std::memcpy(&a, g.data(), sizeof a);
    std::memcpy(&b, g.data() + 8, sizeof b);
    std::memcpy(&c, g.data() + 16, sizeof c);
    const uint64_t h = (a ^ (b << 29 | b >> 35) ^ c) * 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(h >> shift_);
  }
  void Grow() {
    std::vector<Guid> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : old.size() * 2, Guid{});
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(slots_.size()));
    for (const Guid& g : old) {
      if (IsZero(g)) continue;
      size_t i = Home(g);
      while (!IsZero(slots_[i])) i = (i + 1) & mask();
      slots_[i] = g;
    }
  }

  std::vector<Guid> slots_;  // a power of two in size, or empty
  unsigned shift_ = 64;      // Home() takes the top log2(slots_.size()) bits of the mix
  size_t size_ = 0;          // GUIDs held, the all-zero one included
  bool has_zero_ = false;
};

}  // namespace cyrsync::snapshot
