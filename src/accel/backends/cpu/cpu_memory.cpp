// Copies, dtype conversion, fill, and the CPU's synchronisation points.
#include <cstring>
#include <optional>
#include <string>

#include "accel/backends/cpu/cpu_backend.h"
#include "accel/backends/cpu/cpu_convert.h"
#include "accel/backends/cpu/strided.h"
#include "accel/backends/kernel_errors.h"
#include "accel/core/error.h"
#include "accel/core/pixels.h"
#include "accel/core/scalar_types.h"

namespace accel::cpu {
namespace {

// One element of type S as type D, as PyTorch converts (16-bit floats through float32; to
// bool: nonzero).
template <typename D, typename S>
D convert(S value) {
  if constexpr (std::is_same_v<D, S>) {
    return value;
  } else if constexpr (std::is_same_v<D, bool>) {
    return static_cast<double>(load(value)) != 0.0;
  } else if constexpr (std::is_same_v<D, BFloat16>) {
    return BFloat16(static_cast<float>(load(value)));
  } else {
    return static_cast<D>(load(value));
  }
}

template <typename S, typename D>
void copy_kernel(const TensorDesc& src, const TensorDesc& dst) {
  const S* in = src.ptr<const S>();
  D* out = dst.ptr<D>();
  const std::int64_t n = dst.numel();
  if (src.is_contiguous() && dst.is_contiguous()) {
    parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
      if constexpr (kFastConversion<S, D>) {
        convert_contiguous(in + begin, out + begin, end - begin);
      } else {
        for (std::int64_t i = begin; i < end; ++i) out[i] = convert<D>(in[i]);
      }
    });
    return;
  }
  const std::int64_t inner = dst.ndim ? dst.size(dst.ndim - 1) : 1;
  const std::int64_t si = inner_stride(src), di = inner_stride(dst);
  for_each_row<2>(dst, {&src, &dst}, [&](std::int64_t, const std::array<std::int64_t, 2>& at) {
    const S* from = in + at[0];
    D* to = out + at[1];
    for (std::int64_t i = 0; i < inner; ++i) to[i * di] = convert<D>(from[i * si]);
  });
}

}  // namespace

namespace {
thread_local std::optional<std::string> kernel_error;
}

void CpuBackend::record_kernel_error(std::string message) {
  if (!kernel_error) kernel_error = std::move(message);
}

void CpuBackend::synchronize(const Stream&) {
  std::optional<std::string> error;
  error.swap(kernel_error);
  if (error) throw ValueError(*error);
}

void CpuBackend::copy_from_host(void* dst, const void* host_src, std::size_t nbytes, const Stream&) {
  if (nbytes) std::memcpy(dst, host_src, nbytes);
}

void CpuBackend::copy_to_host(void* host_dst, const void* src, std::size_t nbytes, const Stream&) {
  if (nbytes) std::memcpy(host_dst, src, nbytes);
}

void CpuBackend::copy(const TensorDesc& src, const TensorDesc& dst, const Stream&) {
  if (dst.numel() == 0) return;
  if (src.dtype == dst.dtype && src.is_contiguous() && dst.is_contiguous()) {
    std::memcpy(dst.data, src.data, static_cast<std::size_t>(dst.numel()) * element_size(dst.dtype));
    return;
  }
  dispatch_all(src.dtype, "copy", [&]<typename S>() {
    dispatch_all(dst.dtype, "copy", [&]<typename D>() { copy_kernel<S, D>(src, dst); });
  });
}

void CpuBackend::gather_rows(const TensorDesc& src, const TensorDesc& index, const TensorDesc& dst,
                             const Stream& stream) {
  const std::int64_t n = src.size(0), rows = index.size(0);
  const std::int64_t width = rows ? dst.numel() / rows : 0;
  const bool pixels = src.dtype == DType::UInt8 && dst.dtype == DType::Float32;
  const std::size_t row_bytes = static_cast<std::size_t>(width) * element_size(dst.dtype);
  const auto* from = static_cast<const std::byte*>(src.data);
  auto* to = static_cast<std::byte*>(dst.data);
  const std::int64_t* at = index.ptr<const std::int64_t>();
  std::int64_t bad_row = -1;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (at[r] < 0 || at[r] >= n) {
      if (bad_row < 0) bad_row = r;
      continue;
    }
    if (pixels) {
      pixels_to_unit(src.ptr<const std::uint8_t>() + at[r] * width, dst.ptr<float>() + r * width, width);
    } else {
      std::memcpy(to + static_cast<std::size_t>(r) * row_bytes, from + static_cast<std::size_t>(at[r]) * row_bytes,
                  row_bytes);
    }
  }
  if (bad_row >= 0) {
    record_kernel_error(row_index_out_of_range_message(at[bad_row], bad_row, n));
  }
  synchronize(stream);  // the CPU's calls are synchronous: a recorded error is raised here
}

void CpuBackend::fill(const TensorDesc& dst, double value, const Stream&) {
  dispatch_all(dst.dtype, "fill", [&]<typename T>() {
    const T v = convert<T>(value);
    T* out = dst.ptr<T>();
    parallel_for(dst.numel(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) out[i] = v;
    });
  });
}

}  // namespace accel::cpu
