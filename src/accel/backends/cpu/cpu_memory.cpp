// Copies, dtype conversion and fill on the host.
#include <cstring>

#include "accel/backends/cpu/cpu_backend.h"
#include "accel/core/error.h"
#include "accel/core/half.h"

namespace accel::cpu {
namespace {

// Every dtype goes through double on its way to another: exact for all int32/uint8/bool and
// float values, and for int64 up to 2^53 (PyTorch's conversions have the same range).
double load_as_double(const void* base, DType dtype, std::int64_t index) {
  switch (dtype) {
    case DType::Float32:
      return static_cast<const float*>(base)[index];
    case DType::Float16:
      return half_bits_to_float(static_cast<const std::uint16_t*>(base)[index]);
    case DType::BFloat16:
      return bfloat16_bits_to_float(static_cast<const std::uint16_t*>(base)[index]);
    case DType::Float64:
      return static_cast<const double*>(base)[index];
    case DType::Int64:
      return static_cast<double>(static_cast<const std::int64_t*>(base)[index]);
    case DType::Int32:
      return static_cast<const std::int32_t*>(base)[index];
    case DType::UInt8:
      return static_cast<const std::uint8_t*>(base)[index];
    case DType::Bool:
      return static_cast<const bool*>(base)[index] ? 1.0 : 0.0;
  }
  return 0.0;
}

void store_from_double(void* base, DType dtype, std::int64_t index, double value) {
  switch (dtype) {
    case DType::Float32:
      static_cast<float*>(base)[index] = static_cast<float>(value);
      break;
    case DType::Float16:
      static_cast<std::uint16_t*>(base)[index] = float_to_half_bits(static_cast<float>(value));
      break;
    case DType::BFloat16:
      static_cast<std::uint16_t*>(base)[index] = float_to_bfloat16_bits(static_cast<float>(value));
      break;
    case DType::Float64:
      static_cast<double*>(base)[index] = value;
      break;
    case DType::Int64:
      static_cast<std::int64_t*>(base)[index] = static_cast<std::int64_t>(value);
      break;
    case DType::Int32:
      static_cast<std::int32_t*>(base)[index] = static_cast<std::int32_t>(value);
      break;
    case DType::UInt8:
      static_cast<std::uint8_t*>(base)[index] = static_cast<std::uint8_t>(value);
      break;
    case DType::Bool:
      static_cast<bool*>(base)[index] = value != 0.0;
      break;
  }
}

}  // namespace

void CpuBackend::copy_from_host(void* dst, const void* host_src, std::size_t nbytes) {
  if (nbytes) std::memcpy(dst, host_src, nbytes);
}

void CpuBackend::copy_to_host(void* host_dst, const void* src, std::size_t nbytes) {
  if (nbytes) std::memcpy(host_dst, src, nbytes);
}

void CpuBackend::copy_strided(const void* src, DType src_dtype, const Shape& shape,
                              const std::vector<std::int64_t>& src_strides, void* dst, DType dst_dtype,
                              const std::vector<std::int64_t>& dst_strides) {
  const std::int64_t n = shape.numel();
  if (n == 0) return;
  const std::size_t ndim = shape.ndim();
  const auto dense = shape.contiguous_strides();
  const bool contiguous = src_strides == dense && dst_strides == dense;
  if (contiguous && src_dtype == dst_dtype) {
    std::memcpy(dst, src, static_cast<std::size_t>(n) * element_size(src_dtype));
    return;
  }
  if (contiguous && src_dtype == DType::UInt8 && dst_dtype == DType::Float32) {
    const auto* in = static_cast<const std::uint8_t*>(src);
    auto* out = static_cast<float*>(dst);
    parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) out[i] = static_cast<float>(in[i]);
    });
    return;
  }
  // General case: an odometer over the outer dims, a tight loop over the innermost one.
  const std::int64_t inner = ndim ? shape[ndim - 1] : 1;
  const std::int64_t in_step = ndim ? src_strides[ndim - 1] : 1;
  const std::int64_t out_step = ndim ? dst_strides[ndim - 1] : 1;
  const std::int64_t outer = n / inner;
  const auto src_size = static_cast<std::int64_t>(element_size(src_dtype));
  std::vector<std::int64_t> index(ndim, 0);
  for (std::int64_t o = 0; o < outer; ++o) {
    std::int64_t in_at = 0, out_at = 0;
    for (std::size_t d = 0; d + 1 < ndim; ++d) {
      in_at += index[d] * src_strides[d];
      out_at += index[d] * dst_strides[d];
    }
    if (src_dtype == dst_dtype && src_dtype == DType::Float32) {
      const float* in = static_cast<const float*>(src) + in_at;
      float* out = static_cast<float*>(dst) + out_at;
      for (std::int64_t i = 0; i < inner; ++i) out[i * out_step] = in[i * in_step];
    } else if (src_dtype == dst_dtype) {
      const char* in = static_cast<const char*>(src);
      char* out = static_cast<char*>(dst);
      for (std::int64_t i = 0; i < inner; ++i) {
        std::memcpy(out + (out_at + i * out_step) * src_size, in + (in_at + i * in_step) * src_size,
                    static_cast<std::size_t>(src_size));
      }
    } else {
      for (std::int64_t i = 0; i < inner; ++i) {
        store_from_double(dst, dst_dtype, out_at + i * out_step, load_as_double(src, src_dtype, in_at + i * in_step));
      }
    }
    for (std::size_t d = ndim ? ndim - 1 : 0; d-- > 0;) {  // advance the odometer
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

void CpuBackend::fill(void* dst, DType dtype, std::int64_t n, double value) {
  if (dtype == DType::Float32) {
    auto* out = static_cast<float*>(dst);
    const float v = static_cast<float>(value);
    parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) out[i] = v;
    });
    return;
  }
  for (std::int64_t i = 0; i < n; ++i) store_from_double(dst, dtype, i, value);
}

}  // namespace accel::cpu
