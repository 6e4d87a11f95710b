// Helpers shared by the libFuzzer targets in tests/fuzz (HOUSE-STYLE H5): a property check that
// aborts (so libFuzzer saves the input as a crasher), an in-memory ReadableFile, and a
// deterministic way to cut an input into pieces for the streaming parsers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace cyrsync::fuzz {

// A violated property is a bug: print it and abort so libFuzzer records the input.
#define FUZZ_CHECK(cond, what)                                                              \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: property violated: %s: %s\n", __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                              \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

// Decoders of untrusted bytes report bad input as kCorruption and nothing else.
inline void CheckCorruption(const Status& s, std::string_view where) {
  FUZZ_CHECK(s.code() == Code::kCorruption,
             std::string(where) + " returned a non-corruption error: " + s.ToString());
}

// A read-only file over bytes that outlive it.
class MemFile : public ReadableFile {
 public:
  explicit MemFile(std::string_view bytes, std::string path = "mem")
      : bytes_(bytes), path_(std::move(path)) {}
  Result<size_t> ReadAt(uint64_t offset, std::span<char> out) override {
    if (offset >= bytes_.size()) return size_t{0};
    size_t n = std::min<uint64_t>(out.size(), bytes_.size() - offset);
    std::copy_n(bytes_.data() + offset, n, out.data());
    return n;
  }
  Result<FileStat> Stat() override {
    FileStat st;
    st.size = bytes_.size();
    st.mode = 0100600;
    return st;
  }
  Status Lock(LockMode) override { return Status::Ok(); }
  const std::string& path() const override { return path_; }

 private:
  std::string_view bytes_;
  std::string path_;
};

// FNV-1a of the input: seeds the piece sizes below without spending input bytes on them, so real
// files work unchanged as seeds.
inline uint64_t Hash(std::string_view data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Cuts data into pieces of 0..max_piece bytes (empty pieces included: streaming APIs must cope),
// the same way for the same input.
inline std::vector<std::string_view> Pieces(std::string_view data, size_t max_piece) {
  std::vector<std::string_view> out;
  uint64_t x = Hash(data) | 1;
  while (!data.empty()) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t n = std::min<size_t>(data.size(), x % (max_piece + 1));
    out.push_back(data.substr(0, n));
    data.remove_prefix(n);
  }
  return out;
}

}  // namespace cyrsync::fuzz
