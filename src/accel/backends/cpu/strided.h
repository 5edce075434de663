// Walking strided tensors: the innermost dim as a tight loop, the outer dims as an odometer
// computed from the row number, so rows can be split across threads.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "accel/backends/tensor_desc.h"
#include "accel/core/parallel.h"

namespace accel::cpu {

// Calls row(r, offsets) for every row of `shape` (all dims but the last), in parallel above
// the threshold; offsets[i] is the element offset of the row's first element in operands[i].
template <std::size_t N, typename Row>
void for_each_row(const TensorDesc& shape, const std::array<const TensorDesc*, N>& operands, const Row& row) {
  const int ndim = shape.ndim;
  const std::int64_t inner = ndim ? shape.size(ndim - 1) : 1;
  if (inner == 0) return;
  const std::int64_t rows = shape.numel() / inner;
  parallel_for(rows, std::max<std::int64_t>(1, kParallelThreshold / inner), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      std::array<std::int64_t, N> offsets{};
      std::int64_t rest = r;
      for (int d = ndim - 2; d >= 0; --d) {
        const std::int64_t index = rest % shape.size(d);
        rest /= shape.size(d);
        for (std::size_t i = 0; i < N; ++i) offsets[i] += index * operands[i]->stride(d);
      }
      row(r, offsets);
    }
  });
}

// The innermost stride of an operand (1 for a 0-dim tensor).
inline std::int64_t inner_stride(const TensorDesc& t) { return t.ndim ? t.stride(t.ndim - 1) : 1; }

}  // namespace accel::cpu
