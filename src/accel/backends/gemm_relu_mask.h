// GemmEpilogue::relu_mask and bias_gradient as every backend checks and lays them out: the
// mask's shape and dtype, what reading it excludes, and C's column sums (the bias gradient) as
// sum's [outer, reduced, inner] views where a backend computes them with its sum kernel.
#pragma once

#include <string>
#include <vector>

#include "accel/backends/backend.h"
#include "accel/backends/gemm_row_sums.h"
#include "accel/backends/relu_mask.h"
#include "accel/core/error.h"
#include "accel/core/shape.h"

namespace accel {

inline std::string sizes_text(const TensorDesc& d) {
  return Shape(std::vector<std::int64_t>(d.sizes.begin(), d.sizes.begin() + d.ndim)).to_string();
}

// A ValueError naming the problem when the epilogue's mask fields do not fit C [m, n].
inline void check_relu_mask_epilogue(const TensorDesc& c, const GemmEpilogue& e, const char* backend) {
  const std::string where = std::string(backend) + " gemm: ";
  if (!e.relu_mask) {
    if (e.bias_gradient) throw ValueError(where + "bias_gradient needs a relu_mask to read");
    return;
  }
  const std::int64_t m = c.size(0), n = c.size(1), row_bytes = relu_mask_row_bytes(n);
  const TensorDesc& mask = *e.relu_mask;
  if (mask.dtype != DType::UInt8 || mask.ndim != 2 || mask.size(0) != m || mask.size(1) != row_bytes ||
      (mask.numel() > 0 && !mask.is_contiguous())) {
    throw ValueError(where + "the ReLU mask of a [" + std::to_string(m) + ", " + std::to_string(n) +
                     "] output must be a contiguous uint8 [" + std::to_string(m) + ", " + std::to_string(row_bytes) +
                     "] (relu_mask_row_bytes), got " + std::string(dtype_name(mask.dtype)) + " " + sizes_text(mask));
  }
  if (c.ndim != 2 || (c.stride(0) != n && m > 1 && n > 0) || (c.stride(1) != 1 && n > 1)) {
    throw ValueError(where + "a ReLU mask needs a contiguous C");
  }
  if (e.relu) {
    if (e.bias_gradient) throw ValueError(where + "bias_gradient is written only when the mask is read (relu unset)");
    return;
  }
  if (e.bias || e.beta != 0.0f || e.a_row_sums) {
    throw ValueError(where + "reading a ReLU mask takes no bias, beta or a_row_sums");
  }
  if (e.bias_gradient &&
      (e.bias_gradient->dtype != c.dtype || e.bias_gradient->numel() != n || !e.bias_gradient->is_contiguous())) {
    throw ValueError(where + "bias_gradient must be a contiguous [" + std::to_string(n) + "] of C's dtype " +
                     std::string(dtype_name(c.dtype)) + ", got " + std::string(dtype_name(e.bias_gradient->dtype)) +
                     " " + sizes_text(*e.bias_gradient));
  }
}

// C's column sums (C contiguous [m, n]) as sum's views: in [1, m, n], out [1, n].
inline RowSumsViews column_sums_views(const TensorDesc& c, const TensorDesc& sums) {
  RowSumsViews v{c, sums};
  const std::int64_t m = c.size(0), n = c.size(1);
  v.in.ndim = 3;
  v.in.sizes = {1, m, n};
  v.in.strides = {m * n, n, 1};
  v.out.ndim = 2;
  v.out.sizes = {1, n};
  v.out.strides = {n, 1};
  return v;
}

}  // namespace accel
