#include "accel/runtime/token.h"

#include <openssl/evp.h>
#include <sys/random.h>

#include "accel/core/error.h"

namespace accel::runtime {
namespace {

std::string hex(const unsigned char* bytes, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

}  // namespace

std::string new_token() {
  unsigned char bytes[32];
  if (getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) {
    throw Error("new_token: getrandom failed; the kernel's random source is unavailable");
  }
  return "acc_" + hex(bytes, sizeof bytes);
}

std::string hash_token(const std::string& token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(token.data(), token.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw Error("hash_token: OpenSSL EVP_Digest(SHA-256) failed");
  }
  return hex(digest, length);
}

}  // namespace accel::runtime
