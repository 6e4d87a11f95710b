// Big-endian integer helpers for Cyrus's on-disk formats and the wire protocol. Callers check
// bounds before reading; these never read past the span they are given.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cyrsync {

inline uint32_t LoadBE32(std::string_view b, size_t off) {
  auto u = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(b[off + i])); };
  return (u(0) << 24) | (u(1) << 16) | (u(2) << 8) | u(3);
}
inline uint64_t LoadBE64(std::string_view b, size_t off) {
  return (uint64_t{LoadBE32(b, off)} << 32) | LoadBE32(b, off + 4);
}
inline uint16_t LoadBE16(std::string_view b, size_t off) {
  auto u = [&](size_t i) { return static_cast<uint16_t>(static_cast<unsigned char>(b[off + i])); };
  return static_cast<uint16_t>((u(0) << 8) | u(1));
}
inline void AppendBE32(std::string* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<char>((v >> s) & 0xff));
}
inline void AppendBE64(std::string* out, uint64_t v) {
  AppendBE32(out, static_cast<uint32_t>(v >> 32));
  AppendBE32(out, static_cast<uint32_t>(v));
}
inline void AppendBE16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xff));
}

}  // namespace cyrsync
