// What the ops pass to kernels: a tensor's TensorDesc (optionally read as broadcast to a shape,
// or a contiguous tensor seen with other sizes) and the stream of its device.
#pragma once

#include <vector>

#include "accel/backends/backend.h"
#include "accel/tensor/tensor.h"

namespace accel {

// Throws ShapeError naming `op` for a tensor of more than kMaxDims dims.
TensorDesc desc(const Tensor& t, const char* op = "kernel");
// `t` read as if broadcast to `shape` (stride 0 on broadcast dims).
TensorDesc desc_broadcast(const Tensor& t, const Shape& shape, const char* op = "kernel");
// A contiguous `t` seen with `sizes` (same element count), e.g. [outer, reduced, inner].
TensorDesc desc_as(const Tensor& t, const std::vector<std::int64_t>& sizes, const char* op = "kernel");

inline Stream stream_of(const Tensor& t) { return backend_for(t.device()).default_stream(); }

}  // namespace accel
