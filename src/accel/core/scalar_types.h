// The C++ types kernels compute with for each dtype, and dispatch from a runtime DType to a
// template over them. 16-bit floats are stored as 16 bits and computed in float32 (their
// "compute type", PyTorch's opmath_t): load widens exactly, store rounds to nearest even once.
//
//   dispatch_floating(t.dtype, "exp", [&]<typename T>() { kernel<T>(...); });
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "accel/core/dtype.h"
#include "accel/core/error.h"

namespace accel {

// bfloat16: the top 16 bits of a float32. Conversions are branch-free so loops vectorise.
struct BFloat16 {
  std::uint16_t bits;
  BFloat16() = default;
  explicit BFloat16(float value) {
    std::uint32_t x;
    std::memcpy(&x, &value, 4);
    const std::uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    const bool nan = (x & 0x7fffffffu) > 0x7f800000u;
    bits = static_cast<std::uint16_t>(nan ? ((x >> 16) | 0x40u) : rounded);  // NaN stays a quiet NaN
  }
  explicit operator float() const {
    const std::uint32_t x = static_cast<std::uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &x, 4);
    return value;
  }
};

// float16: the compiler's IEEE half (x86-64: F16C conversions where the CPU has them).
using Float16 = _Float16;

template <typename T>
struct ComputeType {
  using type = T;
};
template <>
struct ComputeType<BFloat16> {
  using type = float;
};
template <>
struct ComputeType<Float16> {
  using type = float;
};
template <typename T>
using compute_t = typename ComputeType<T>::type;

template <typename T>
inline compute_t<T> load(T value) {
  return static_cast<compute_t<T>>(value);
}
template <typename T>
inline T store(compute_t<T> value) {
  return static_cast<T>(value);
}

template <typename F>
decltype(auto) dispatch_floating(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32:
      return f.template operator()<float>();
    case DType::Float64:
      return f.template operator()<double>();
    case DType::BFloat16:
      return f.template operator()<BFloat16>();
    case DType::Float16:
      return f.template operator()<Float16>();
    default:
      throw DTypeError(std::string(op) + ": no kernel for " + std::string(dtype_name(dtype)) +
                       " (floating types: float32, float64, bfloat16, float16)");
  }
}

// Floating types and the integer types PyTorch does arithmetic in (not bool).
template <typename F>
decltype(auto) dispatch_arithmetic(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Int64:
      return f.template operator()<std::int64_t>();
    case DType::Int32:
      return f.template operator()<std::int32_t>();
    case DType::UInt8:
      return f.template operator()<std::uint8_t>();
    default:
      return dispatch_floating(dtype, op, std::forward<F>(f));
  }
}

// Every dtype.
template <typename F>
decltype(auto) dispatch_all(DType dtype, const char* op, F&& f) {
  if (dtype == DType::Bool) return f.template operator()<bool>();
  return dispatch_arithmetic(dtype, op, std::forward<F>(f));
}

}  // namespace accel
