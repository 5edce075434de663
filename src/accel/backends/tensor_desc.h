// TensorDesc: what a kernel sees of a tensor: device pointer, dtype, sizes and strides (in
// elements, up to kMaxDims). Stream and Event: where a kernel runs and how work on two streams
// is ordered. Kernels never see Tensor (no refcounts, no autograd) and never a bare float*.
#pragma once

#include <array>
#include <cstdint>

#include "accel/core/device.h"
#include "accel/core/dtype.h"

namespace accel {

inline constexpr int kMaxDims = 8;

struct TensorDesc {
  void* data = nullptr;
  DType dtype = DType::Float32;
  int ndim = 0;
  std::array<std::int64_t, kMaxDims> sizes{};
  std::array<std::int64_t, kMaxDims> strides{};  // in elements; 0 on a broadcast dim

  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
  std::int64_t size(int d) const { return sizes[static_cast<std::size_t>(d)]; }
  std::int64_t stride(int d) const { return strides[static_cast<std::size_t>(d)]; }
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= size(d);
    return n;
  }
  bool is_contiguous() const {
    std::int64_t expected = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      if (size(d) != 1 && stride(d) != expected) return false;
      expected *= size(d);
    }
    return true;
  }
};

// A queue of kernels on one device; id 0 is the device's default stream. The CPU backend runs
// every kernel before the call returns, so its streams are always idle.
struct Stream {
  Device device;
  std::uint64_t id = 0;
};

// A point in a stream's work that another stream (or the host) can wait for.
struct Event {
  Device device;
  std::uint64_t id = 0;
};

}  // namespace accel
