// Fused optimizer steps: one OpenMP region walks every parameter, with PyTorch's update
// formulas in PyTorch's order of operations (so results match to rounding).
#include <cmath>

#include "accel/backends/cpu/cpu_backend.h"

namespace accel::cpu {

void CpuBackend::adam_step(std::span<const ParamBuffers> params, const AdamHyper& h) {
  // In double, then rounded once, as PyTorch computes these Python scalars.
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(h.step));
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(h.step));
  const auto step_size = static_cast<float>(static_cast<double>(h.lr) / bias_correction1);
  const auto bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float one_minus_beta1 = 1.0f - h.beta1;
  const float one_minus_beta2 = 1.0f - h.beta2;
  const float decay = 1.0f - h.lr * h.weight_decay;
  std::int64_t total = 0;
  for (const ParamBuffers& p : params) total += p.numel;
#pragma omp parallel if (total >= kParallelThreshold)
  for (const ParamBuffers& p : params) {
    float* __restrict w = p.param;
    const float* __restrict g = p.grad;
    float* __restrict m = p.exp_avg;
    float* __restrict v = p.exp_avg_sq;
#pragma omp for simd schedule(static) nowait
    for (std::int64_t i = 0; i < p.numel; ++i) {
      float grad = g[i];
      if (h.weight_decay != 0.0f) {
        if (h.decoupled_weight_decay) {
          w[i] *= decay;
        } else {
          grad += h.weight_decay * w[i];
        }
      }
      m[i] = m[i] * h.beta1 + grad * one_minus_beta1;
      v[i] = v[i] * h.beta2 + one_minus_beta2 * grad * grad;
      const float denom = std::sqrt(v[i]) / bias_correction2_sqrt + h.eps;
      w[i] += -step_size * (m[i] / denom);
    }
  }
}

void CpuBackend::sgd_step(std::span<const ParamBuffers> params, const SgdHyper& h) {
  std::int64_t total = 0;
  for (const ParamBuffers& p : params) total += p.numel;
#pragma omp parallel if (total >= kParallelThreshold)
  for (const ParamBuffers& p : params) {
    float* __restrict w = p.param;
    const float* __restrict g = p.grad;
    float* __restrict buf = p.exp_avg;
#pragma omp for simd schedule(static) nowait
    for (std::int64_t i = 0; i < p.numel; ++i) {
      float d = g[i];
      if (h.weight_decay != 0.0f) d += h.weight_decay * w[i];
      if (h.momentum != 0.0f) {
        buf[i] = h.first_step ? d : buf[i] * h.momentum + (1.0f - h.dampening) * d;
        d = h.nesterov ? d + h.momentum * buf[i] : buf[i];
      }
      w[i] += -h.lr * d;
    }
  }
}

}  // namespace accel::cpu
