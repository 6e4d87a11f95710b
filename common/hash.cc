#include "common/hash.h"

#include <openssl/evp.h>
#include <zlib.h>

namespace cyrsync {

uint32_t Crc32(std::string_view data, uint32_t seed) {
  uLong crc = seed;
  // zlib's crc32 takes uInt lengths; feed large buffers in pieces.
  while (!data.empty()) {
    size_t n = std::min<size_t>(data.size(), 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(n));
    data.remove_prefix(n);
  }
  return static_cast<uint32_t>(crc);
}

Sha1Hasher::Sha1Hasher() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha1(), nullptr);
}
Sha1Hasher::~Sha1Hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha1Hasher::Update(std::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}
Sha1Digest Sha1Hasher::Finish() {
  Sha1Digest d{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), d.data(), &len);
  return d;
}

Sha1Digest Sha1(std::string_view data) {
  Sha1Hasher h;
  h.Update(data);
  return h.Finish();
}

std::string HexEncode(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kHex[c >> 4];
    out[2 * i + 1] = kHex[c & 15];
  }
  return out;
}

std::string Sha1Hex(std::string_view data) {
  auto d = Sha1(data);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

}  // namespace cyrsync
