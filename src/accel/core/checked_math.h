// Products of sizes that cannot wrap around: a shape, a header or a byte count whose product
// does not fit is an error at the place that read it, never a small number that allocates too
// little and lets a later index run past the end.
#pragma once

#include <cstdint>
#include <optional>

namespace accel {

// a * b, or nothing when it does not fit in T.
template <typename T>
std::optional<T> checked_mul(T a, T b) {
  T out;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// a + b, or nothing when it does not fit in T.
template <typename T>
std::optional<T> checked_add(T a, T b) {
  T out;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

}  // namespace accel
