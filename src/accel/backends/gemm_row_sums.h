// GemmEpilogue::a_row_sums where a backend computes it with its own sum kernel (the CPU; the
// GPU when cuBLASLt cannot fuse it): A [m, k] and the sums [m] as sum's
// [outer, reduced, inner] input and [outer, inner] output, without a copy.
#pragma once

#include <string>

#include "accel/backends/tensor_desc.h"
#include "accel/core/error.h"

namespace accel {

struct RowSumsViews {
  TensorDesc in;   // [outer, reduced, inner], contiguous
  TensorDesc out;  // [outer, inner], contiguous
};

inline RowSumsViews row_sums_views(const TensorDesc& a, const TensorDesc& sums) {
  const std::int64_t m = a.size(0), k = a.size(1);
  RowSumsViews v{a, sums};
  v.in.ndim = 3;
  v.out.ndim = 2;
  if (m * k == 0 || (a.stride(1) == 1 && (a.stride(0) == k || m == 1))) {  // A row-major (or empty)
    v.in.sizes = {m, k, 1};
    v.in.strides = {k, 1, 1};
    v.out.sizes = {m, 1};
    v.out.strides = {1, 1};
  } else if (a.stride(0) == 1 && (a.stride(1) == m || k == 1)) {  // A^T row-major: sum its k rows
    v.in.sizes = {1, k, m};
    v.in.strides = {k * m, m, 1};
    v.out.sizes = {1, m};
    v.out.strides = {m, 1};
  } else {
    throw ValueError("gemm: row sums need A [" + std::to_string(m) + ", " + std::to_string(k) +
                     "] contiguous or the transpose of a contiguous matrix, got strides [" +
                     std::to_string(a.stride(0)) + ", " + std::to_string(a.stride(1)) + "]");
  }
  return v;
}

}  // namespace accel
