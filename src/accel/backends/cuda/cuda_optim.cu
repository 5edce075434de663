// Optimizer steps and gradient scaling on the GPU. Adam's per-step scalars are computed by a
// one-thread kernel into device scratch, so a step count kept on the device (a captured step)
// and GradScaler's skip (found_inf) are decided without the host; the update itself is
// device_math.h's adam_element, the CPU backend's formula.
#include <cuda_runtime.h>

#include "accel/backends/cuda/cuda_kernels.h"
#include "accel/backends/cuda/cuda_types.cuh"

namespace accel::cuda_backend {
namespace {

__global__ void adam_scalars_kernel(AdamScalars* out, double lr, double beta1, double beta2, std::int64_t host_step,
                                    std::int64_t* device_step, const float* found_inf) {
  if (found_inf && *found_inf != 0.0f) {  // GradScaler's skip: the count stays too
    out->skip = 1;
    return;
  }
  const std::int64_t step = device_step ? ++*device_step : host_step;
  *out = adam_scalars(lr, beta1, beta2, step);
}

__global__ void adam_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                            float* __restrict__ v, std::int64_t n, AdamConstants c, const AdamScalars* scalars) {
  const AdamScalars s = *scalars;
  if (s.skip) return;
  ACCEL_GRID_STRIDE(i, n) adam_element(w[i], g[i], m[i], v[i], c, s);
}

__global__ void sgd_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ buf, std::int64_t n,
                           SgdConstants c) {
  ACCEL_GRID_STRIDE(i, n) sgd_element(w[i], g[i], buf ? buf + i : nullptr, c);
}

__global__ void unscale_kernel(float* data, std::int64_t n, const float* scale, float* found_inf) {
  const auto factor = static_cast<float>(1.0 / static_cast<double>(*scale));
  bool non_finite = false;
  ACCEL_GRID_STRIDE(i, n) {
    non_finite |= !isfinite(data[i]);
    data[i] *= factor;
  }
  if (non_finite) *found_inf = 1.0f;
}

__global__ void update_scale_kernel(float* scale, std::int32_t* growth_tracker, const float* found_inf, double growth,
                                    double backoff, std::int32_t interval) {
  if (*found_inf != 0.0f) {
    *scale = static_cast<float>(*scale * backoff);
    *growth_tracker = 0;
    return;
  }
  const std::int32_t successful = *growth_tracker + 1;
  if (successful == interval) {
    const auto grown = static_cast<float>(*scale * growth);
    if (isfinite(grown)) *scale = grown;
    *growth_tracker = 0;
  } else {
    *growth_tracker = successful;
  }
}

}  // namespace

void launch_adam(std::span<const ParamBuffers> params, const AdamHyper& h, AdamScalars* scratch, cudaStream_t stream) {
  adam_scalars_kernel<<<1, 1, 0, stream>>>(scratch, h.lr, h.beta1, h.beta2, h.step, h.device_step, h.found_inf);
  const AdamConstants constants =
      adam_constants(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.decoupled_weight_decay);
  for (const ParamBuffers& p : params) {
    if (p.numel == 0) continue;
    adam_kernel<<<static_cast<unsigned>(blocks_for(p.numel)), kThreads, 0, stream>>>(
        p.param, p.grad, p.exp_avg, p.exp_avg_sq, p.numel, constants, scratch);
  }
  check_launch("adam");
}

void launch_sgd(std::span<const ParamBuffers> params, const SgdHyper& h, cudaStream_t stream) {
  const SgdConstants constants{h.lr, h.momentum, h.dampening, h.weight_decay, h.nesterov ? 1 : 0, h.first_step ? 1 : 0};
  for (const ParamBuffers& p : params) {
    if (p.numel == 0) continue;
    sgd_kernel<<<static_cast<unsigned>(blocks_for(p.numel)), kThreads, 0, stream>>>(p.param, p.grad, p.exp_avg, p.numel,
                                                                                    constants);
  }
  check_launch("sgd");
}

void launch_unscale(std::span<const GradSpan> grads, const float* scale, float* found_inf, cudaStream_t stream) {
  for (const GradSpan& g : grads) {
    if (g.numel == 0) continue;
    unscale_kernel<<<static_cast<unsigned>(blocks_for(g.numel)), kThreads, 0, stream>>>(g.data, g.numel, scale,
                                                                                        found_inf);
  }
  check_launch("unscale_and_check_finite");
}

void launch_update_scale(float* scale, std::int32_t* growth_tracker, const float* found_inf, double growth,
                         double backoff, std::int32_t interval, cudaStream_t stream) {
  update_scale_kernel<<<1, 1, 0, stream>>>(scale, growth_tracker, found_inf, growth, backoff, interval);
  check_launch("update_scale");
}

}  // namespace accel::cuda_backend
