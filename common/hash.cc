#include "common/hash.h"

#include <openssl/evp.h>
#include <libdeflate.h>

namespace cyrsync {

uint32_t Crc32(std::string_view data, uint32_t seed) {
  return libdeflate_crc32(seed, data.data(), data.size());
}

namespace {

// Fetched once: EVP_sha1() makes OpenSSL 3 look the algorithm up again at every digest init,
// which cost more than hashing a small message.
const EVP_MD* Sha1Md() {
  static const EVP_MD* md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    return fetched != nullptr ? fetched : EVP_sha1();
  }();
  return md;
}

}  // namespace

Sha1Hasher::Sha1Hasher() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), Sha1Md(), nullptr);
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

std::string HexEncode(const Sha1Digest& digest) {
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string Sha1Hex(std::string_view data) { return HexEncode(Sha1(data)); }

}  // namespace cyrsync
