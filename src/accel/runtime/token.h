// API tokens: random, shown once, stored only as a SHA-256 hash (OpenSSL).
#pragma once

#include <string>

namespace accel::runtime {

// 32 random bytes from the kernel, hex, prefixed "acc_".
std::string new_token();
std::string hash_token(const std::string& token);

}  // namespace accel::runtime
