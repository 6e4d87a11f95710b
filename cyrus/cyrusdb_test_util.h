// Test helpers shared by the cyrusdb, mboxlist and paths tests: access to the real-Cyrus fixtures
// under tests/data (made by tests/data/make_mboxlist_fixtures.sh) and a tiny twoskip writer for
// hand-made files. Test-only; not part of the library.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/env.h"
#include "common/hash.h"
#include "cyrus/cyrusdb.h"

namespace cyrsync::cyrus::testing {

inline std::string FixturePath(std::string_view rel) {
  const char* src = std::getenv("CYRSYNC_SOURCE_DIR");
  return JoinPath(src != nullptr ? src : ".", JoinPath("tests/data", rel));
}

inline std::string ReadFixture(std::string_view rel) {
  auto r = ReadFileToString(Env::Default(), FixturePath(rel));
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  return r.ok() ? *r : std::string();
}

// Parses `cyr_dbtool <db> <backend> show` output: "key TAB value" lines (keys hold no TAB).
inline KvList ParseDbtoolShow(std::string_view text) {
  KvList out;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    size_t tab = line.find('\t');
    out.emplace_back(std::string(line.substr(0, tab)), std::string(line.substr(tab + 1)));
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
  }
  return out;
}

// Builds twoskip files record by record (format in cyrus-formats.md §9.1). Offsets are fixed
// as records are appended; pointers can be patched afterwards with SetPtrs.
class TwoskipBuilder {
 public:
  TwoskipBuilder() {
    bytes_.assign(64, '\0');
    dummy_ = Add('=', 31, "", "");
  }

  uint64_t dummy() const { return dummy_; }

  // Appends a record with zero pointers; returns its offset.
  uint64_t Add(char type, uint8_t level, std::string_view key, std::string_view val) {
    uint64_t off = bytes_.size();
    Rec r{
        off, type, level, std::string(key), std::string(val), std::vector<uint64_t>(level + 1u, 0)};
    recs_.push_back(r);
    bytes_ += Encode(r);
    return off;
  }

  void SetPtrs(uint64_t off, std::vector<uint64_t> ptrs) {
    for (Rec& r : recs_) {
      if (r.off != off) continue;
      r.ptrs = std::move(ptrs);
      std::string enc = Encode(r);
      bytes_.replace(off, enc.size(), enc);
    }
  }

  // Header with current_size = file size unless given.
  std::string Finish(uint64_t num_records, uint64_t current_size = 0, uint32_t flags = 0) {
    std::string h("\xa1\x02\x8b\x0dtwoskip file\0\0\0\0", 20);
    AppendBE32(&h, 1);
    AppendBE64(&h, 1);
    AppendBE64(&h, num_records);
    AppendBE64(&h, 64);
    AppendBE64(&h, current_size != 0 ? current_size : bytes_.size());
    AppendBE32(&h, flags);
    AppendBE32(&h, Crc32(h));
    std::string out = bytes_;
    out.replace(0, 64, h);
    return out;
  }

 private:
  struct Rec {
    uint64_t off;
    char type;
    uint8_t level;
    std::string key, val;
    std::vector<uint64_t> ptrs;
  };

  static std::string Encode(const Rec& r) {
    std::string head;
    head.push_back(r.type);
    head.push_back(static_cast<char>(r.level));
    AppendBE16(&head, static_cast<uint16_t>(r.key.size()));
    AppendBE32(&head, static_cast<uint32_t>(r.val.size()));
    for (uint64_t p : r.ptrs) AppendBE64(&head, p);
    std::string tail = r.key + r.val;
    tail.resize((tail.size() + 7) & ~size_t{7}, '\0');
    std::string out = head;
    AppendBE32(&out, Crc32(head));
    AppendBE32(&out, Crc32(tail));
    return out + tail;
  }

  std::string bytes_;
  std::vector<Rec> recs_;
  uint64_t dummy_ = 0;
};

}  // namespace cyrsync::cyrus::testing
