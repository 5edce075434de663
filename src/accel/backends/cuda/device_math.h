// The arithmetic of the CUDA kernels that does not need a GPU: where a strided element lives,
// how a grid covers n elements, the [outer, reduced, inner] layout of reductions, and the
// optimizers' per-element updates. Written as __host__ __device__ functions so the kernels call
// exactly these, and tests/backends/cuda_device_math_test.cpp runs them on the CPU (the
// development machines have no GPU) against the CPU backend's results.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "accel/backends/tensor_desc.h"
#include "accel/core/host_device.h"

namespace accel::cuda_backend {

// A tensor's sizes and strides as a kernel argument (TensorDesc's std::array members are host
// code; this is plain data).
struct Strided {
  int ndim = 0;
  std::int64_t sizes[kMaxDims] = {};
  std::int64_t strides[kMaxDims] = {};
};

inline Strided strided(const TensorDesc& d) {
  Strided s;
  s.ndim = d.ndim;
  for (int i = 0; i < d.ndim; ++i) {
    s.sizes[i] = d.size(i);
    s.strides[i] = d.stride(i);
  }
  return s;
}

// Operand `of` read over the sizes of `shape` (a broadcast operand has stride 0 on the dims it
// repeats): the sizes of one, the strides of the other.
inline Strided strided_over(const TensorDesc& shape, const TensorDesc& of) {
  Strided s = strided(shape);
  for (int i = 0; i < shape.ndim; ++i) s.strides[i] = of.stride(i);
  return s;
}

// The element offset of the element whose row-major index over s.sizes is `index`.
ACCEL_HD inline std::int64_t offset_of(std::int64_t index, const Strided& s) {
  std::int64_t offset = 0;
  for (int d = s.ndim - 1; d >= 0; --d) {
    const std::int64_t size = s.sizes[d];
    offset += (index % size) * s.strides[d];
    index /= size;
  }
  return offset;
}

// Launch geometry: kernels walk [0, n) in grid-stride loops (index = block * threads + thread,
// then += blocks * threads), so any n runs on a bounded grid.
inline constexpr int kThreads = 256;
inline constexpr std::int64_t kMaxBlocks = 65535;
inline std::int64_t blocks_for(std::int64_t n) {
  return std::clamp<std::int64_t>((n + kThreads - 1) / kThreads, 1, kMaxBlocks);
}

// Reductions see a contiguous [outer, reduced, inner] tensor: output element `o * inner + i`
// reads in[(o * reduced + r) * inner + i] for r in [0, reduced).
struct ReduceLayout {
  std::int64_t outer, reduced, inner;
  ACCEL_HD std::int64_t outputs() const { return outer * inner; }
  ACCEL_HD std::int64_t first_input(std::int64_t output) const {
    return (output / inner) * reduced * inner + output % inner;
  }
};

// Adam's per-step scalars (on the device, per block, when the step count lives there), in
// double and rounded once, as the CPU backend and PyTorch do.
struct AdamScalars {
  float step_size;             // lr / (1 - beta1^step)
  float inv_bias_correction2;  // 1 / sqrt(1 - beta2^step)
};

ACCEL_HD inline AdamScalars adam_scalars(double lr, double beta1, double beta2, std::int64_t step) {
  const double bias_correction1 = 1.0 - pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - pow(beta2, static_cast<double>(step));
  return {static_cast<float>(lr / bias_correction1), static_cast<float>(1.0 / sqrt(bias_correction2))};
}

// The float32 constants of the element update, derived in double and rounded once.
struct AdamConstants {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay, decay;
  int mode;  // 0: no weight decay, 1: L2 (Adam), 2: decoupled (AdamW)
};

inline AdamConstants adam_constants(double lr, double beta1, double beta2, double eps, double weight_decay,
                                    bool decoupled) {
  return {static_cast<float>(beta1),
          static_cast<float>(beta2),
          static_cast<float>(1.0 - beta1),
          static_cast<float>(1.0 - beta2),
          static_cast<float>(eps),
          static_cast<float>(weight_decay),
          static_cast<float>(1.0 - lr * weight_decay),
          weight_decay == 0.0 ? 0 : (decoupled ? 2 : 1)};
}

// One parameter's Adam update, in the CPU backend's order of operations.
ACCEL_HD inline void adam_element(float& weight, float grad, float& m, float& v, const AdamConstants& c,
                                  const AdamScalars& s) {
  float w = weight;
  if (c.mode == 2) w *= c.decay;
  if (c.mode == 1) grad += c.weight_decay * w;
  const float m_new = m * c.beta1 + grad * c.one_minus_beta1;
  const float v_new = v * c.beta2 + c.one_minus_beta2 * grad * grad;
  m = m_new;
  v = v_new;
  const float denom = sqrtf(v_new) * s.inv_bias_correction2 + c.eps;
  weight = w + -s.step_size * (m_new / denom);
}

struct SgdConstants {
  float lr, momentum, dampening, weight_decay;
  int nesterov, first_step;
};

// One parameter's SGD update (momentum buffer `buf` unused without momentum).
ACCEL_HD inline void sgd_element(float& weight, float grad, float* buf, const SgdConstants& c) {
  float d = grad;
  if (c.weight_decay != 0.0f) d += c.weight_decay * weight;
  if (c.momentum != 0.0f) {
    *buf = c.first_step ? d : *buf * c.momentum + (1.0f - c.dampening) * d;
    d = c.nesterov ? d + c.momentum * *buf : *buf;
  }
  weight += -c.lr * d;
}

}  // namespace accel::cuda_backend
