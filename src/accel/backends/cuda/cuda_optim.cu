// Optimizer steps and gradient scaling on the GPU. Adam is one kernel per parameter buffer (one
// launch over a model's whole gradient arena): every block derives the step's scalars itself
// (device_math.h's adam_scalars, in double, as the CPU backend), from a step count that may
// live on the device (a captured step), and GradScaler's skip (found_inf) is read there too,
// so nothing waits for the host. The update is device_math.h's adam_element, the CPU's formula.
#include <cuda_runtime.h>

#include "accel/backends/cuda/cuda_kernels.h"
#include "accel/backends/cuda/cuda_types.cuh"

namespace accel::cuda_backend {
namespace {

struct AdamStep {
  double lr, beta1, beta2;
  std::int64_t host_step;     // used when device_step is null
  std::int64_t* device_step;  // the count on the device: this step is *device_step + 1
  const float* found_inf;     // GradScaler's flag, or null
};

// `blocks_done` (device memory, 0 between launches) is given to the last launch of a step only:
// its last block to finish writes the new count, once every block has read the old one.
__global__ void adam_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                            float* __restrict__ v, std::int64_t n, AdamConstants c, AdamStep h, unsigned* blocks_done) {
  if (h.found_inf && *h.found_inf != 0.0f) return;  // GradScaler's skip: the count stays too
  const std::int64_t step = h.device_step ? *h.device_step + 1 : h.host_step;
  const AdamScalars s = adam_scalars(h.lr, h.beta1, h.beta2, step);
  ACCEL_GRID_STRIDE(i, n) adam_element(w[i], g[i], m[i], v[i], c, s);
  if (!blocks_done) return;
  __syncthreads();  // every thread of this block has read the count
  if (threadIdx.x == 0 && atomicAdd(blocks_done, 1u) == gridDim.x - 1) {
    *h.device_step = step;
    *blocks_done = 0;
  }
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

void launch_adam(std::span<const ParamBuffers> params, const AdamHyper& h, unsigned* blocks_done, cudaStream_t stream) {
  const AdamConstants constants =
      adam_constants(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.decoupled_weight_decay);
  const AdamStep step{h.lr, h.beta1, h.beta2, h.step, h.device_step, h.found_inf};
  std::size_t last = params.size();  // the last buffer with elements: its launch advances the count
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (params[i].numel > 0) last = i;
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    const ParamBuffers& p = params[i];
    if (p.numel == 0) continue;
    adam_kernel<<<static_cast<unsigned>(blocks_for(p.numel)), kThreads, 0, stream>>>(
        p.param, p.grad, p.exp_avg, p.exp_avg_sq, p.numel, constants, step,
        h.device_step && i == last ? blocks_done : nullptr);
  }
  if (h.device_step && last == params.size()) {  // no elements at all: the count still advances
    adam_kernel<<<1, kThreads, 0, stream>>>(nullptr, nullptr, nullptr, nullptr, 0, constants, step, blocks_done);
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
