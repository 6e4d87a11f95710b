// Checksums used across cyrsync: CRC32 (zlib/IEEE, as Cyrus uses) and SHA-1 (message GUIDs).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace cyrsync {

uint32_t Crc32(std::string_view data, uint32_t seed = 0);

using Sha1Digest = std::array<uint8_t, 20>;
Sha1Digest Sha1(std::string_view data);
std::string HexEncode(std::string_view bytes);
// A digest as 40 lower-case hex digits.
std::string HexEncode(const Sha1Digest& digest);
std::string Sha1Hex(std::string_view data);

// Incremental SHA-1 for streamed data.
class Sha1Hasher {
 public:
  Sha1Hasher();
  ~Sha1Hasher();
  Sha1Hasher(const Sha1Hasher&) = delete;
  Sha1Hasher& operator=(const Sha1Hasher&) = delete;
  void Update(std::string_view data);
  Sha1Digest Finish();

 private:
  void* ctx_;
};

}  // namespace cyrsync
