// Device-side dtypes for the CUDA kernels: the storage type of each DType, its compute type
// (16-bit floats compute in float32, as on the CPU), conversions as PyTorch converts, and the
// dispatch from a runtime DType to a kernel template.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "accel/core/dtype.h"
#include "accel/core/error.h"

// A grid-stride loop over [0, n) (device_math.h's launch geometry).
#define ACCEL_GRID_STRIDE(i, n)                                                                    \
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)

namespace accel::cuda_backend {

using bf16 = __nv_bfloat16;
using f16 = __half;

template <typename T>
struct Compute {
  using type = T;
};
template <>
struct Compute<bf16> {
  using type = float;
};
template <>
struct Compute<f16> {
  using type = float;
};
template <typename T>
using compute_t = typename Compute<T>::type;

template <typename T>
__device__ __forceinline__ compute_t<T> load(T x) {
  if constexpr (std::is_same_v<T, bf16>) {
    return __bfloat162float(x);
  } else if constexpr (std::is_same_v<T, f16>) {
    return __half2float(x);
  } else {
    return x;
  }
}

// Any arithmetic value to storage type D, as the CPU backend converts: bfloat16 rounds from
// float32 (a double through float32 first, as BFloat16(float)), float16 rounds once from the
// value itself (as _Float16's conversions), bool is "nonzero".
template <typename D, typename V>
__host__ __device__ __forceinline__ D convert_to(V v) {
  if constexpr (std::is_same_v<D, V>) {
    return v;
  } else if constexpr (std::is_same_v<D, bool>) {
    return static_cast<double>(v) != 0.0;
  } else if constexpr (std::is_same_v<D, bf16>) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<D, f16>) {
    if constexpr (std::is_same_v<V, double>) {
      return __double2half(v);
    } else if constexpr (std::is_same_v<V, std::int64_t>) {
      return __ll2half_rn(v);
    } else if constexpr (std::is_same_v<V, std::int32_t>) {
      return __int2half_rn(v);
    } else {
      return __float2half_rn(static_cast<float>(v));
    }
  } else {
    return static_cast<D>(v);
  }
}

template <typename T>
__device__ __forceinline__ T store(compute_t<T> v) {
  return convert_to<T>(v);
}

template <typename F>
void dispatch_floating(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    case DType::BFloat16:
      return f(bf16{});
    case DType::Float16:
      return f(f16{});
    default:
      throw DTypeError(std::string(op) + ": no CUDA kernel for " + std::string(dtype_name(dtype)) +
                       " (floating types: float32, float64, bfloat16, float16)");
  }
}

template <typename F>
void dispatch_arithmetic(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Int64:
      return f(std::int64_t{});
    case DType::Int32:
      return f(std::int32_t{});
    case DType::UInt8:
      return f(std::uint8_t{});
    default:
      return dispatch_floating(dtype, op, static_cast<F&&>(f));
  }
}

template <typename F>
void dispatch_all(DType dtype, const char* op, F&& f) {
  if (dtype == DType::Bool) return f(bool{});
  return dispatch_arithmetic(dtype, op, static_cast<F&&>(f));
}

// Raises a launch error (a bad configuration, no kernel image for this GPU) at the call.
void check_launch(const char* kernel);

}  // namespace accel::cuda_backend
