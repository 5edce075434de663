// Gradient scaling for mixed precision, with PyTorch's CPU kernels' arithmetic.
#include <cmath>

#include "accel/backends/cpu/cpu_backend.h"

namespace accel::cpu {

void CpuBackend::unscale_and_check_finite(std::span<const GradSpan> grads, const float* scale, float* found_inf,
                                          const Stream&) {
  const auto factor = static_cast<float>(1.0 / static_cast<double>(*scale));
  int non_finite = 0;
  for (const GradSpan& g : grads) {
    float* __restrict data = g.data;
#pragma omp parallel for simd reduction(| : non_finite) if (g.numel >= kParallelThreshold)
    for (std::int64_t i = 0; i < g.numel; ++i) {
      non_finite |= std::isfinite(data[i]) ? 0 : 1;
      data[i] *= factor;
    }
  }
  if (non_finite) *found_inf = 1.0f;
}

void CpuBackend::update_scale(float* scale, std::int32_t* growth_tracker, const float* found_inf, double growth,
                              double backoff, std::int32_t interval, const Stream&) {
  if (*found_inf != 0.0f) {
    *scale = static_cast<float>(*scale * backoff);
    *growth_tracker = 0;
    return;
  }
  const std::int32_t successful = *growth_tracker + 1;
  if (successful == interval) {
    const auto grown = static_cast<float>(*scale * growth);
    if (std::isfinite(grown)) *scale = grown;
    *growth_tracker = 0;
  } else {
    *growth_tracker = successful;
  }
}

}  // namespace accel::cpu
