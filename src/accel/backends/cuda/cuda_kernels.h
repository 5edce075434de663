// Host-side launchers of the CUDA backend's kernels (defined in the .cu files of this folder).
// Each validates nothing: the ops layer has checked shapes and dtypes (backend.h's
// conventions); each queues its kernels on `stream` and returns.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>

#include "accel/backends/backend.h"
#include "accel/backends/cuda/device_math.h"

namespace accel::cuda_backend {

// A bad value a kernel met (in device memory); code 0 means none. Of several bad rows, the
// record holds the one whose thread claimed it first (its fields agree with each other); the
// CPU names the first (gather_rows) or the last (cross-entropy).
struct KernelErrorRecord {
  int code;                        // kKernelErrorTarget or kKernelErrorRowIndex
  std::int64_t row, value, limit;  // where, the bad value, and the exclusive bound it broke
};
inline constexpr int kKernelErrorTarget = 1;    // a cross-entropy class index out of range
inline constexpr int kKernelErrorRowIndex = 2;  // a gather_rows index out of range

// Device scratch for a reduction over many blocks that ends in one value: each block writes its
// partial, and the last block to finish (blocks_done, 0 between launches) adds them up in a
// fixed order, so the value is deterministic. The backend keeps one, for its stream 0.
inline constexpr int kMaxReduceBlocks = 1024;
struct ReduceScratch {
  double partial[kMaxReduceBlocks];
  unsigned blocks_done;
};

// cuda_elementwise.cu
void launch_fill(const TensorDesc& dst, double value, cudaStream_t stream);
void launch_copy(const TensorDesc& src, const TensorDesc& dst, cudaStream_t stream);
void launch_gather_rows(const TensorDesc& src, const TensorDesc& index, const TensorDesc& dst, KernelErrorRecord* error,
                        cudaStream_t stream);
void launch_dropout_mask(const TensorDesc& dst, double p, std::uint64_t seed, std::uint64_t* offset,
                         cudaStream_t stream);
void launch_binary(BinaryOp op, const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, cudaStream_t stream);
void launch_binary_scalar(BinaryOp op, const TensorDesc& a, double scalar, const TensorDesc& out, cudaStream_t stream);
void launch_unary(UnaryOp op, const TensorDesc& in, const TensorDesc& out, cudaStream_t stream);
void launch_relu_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst, cudaStream_t stream);
void launch_eq(const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, cudaStream_t stream);
// A GEMM epilogue cuBLASLt could not fuse: c [m, n] (row stride c.strides[0]) += bias, then
// ReLU; from_zero: c = bias, then ReLU (a GEMM with k = 0 and beta = 0).
void launch_bias_relu(const TensorDesc& c, const TensorDesc* bias, bool relu, bool from_zero, cudaStream_t stream);
// The ReLU mask (relu_mask.h) of c [m, n] (contiguous, after its ReLU) written, or (write
// false) applied to c: c = 0 where the mask's bit is clear.
void launch_relu_mask(const TensorDesc& c, const TensorDesc& mask, bool write, cudaStream_t stream);

// cuda_reduce.cu
void launch_sum(const TensorDesc& in, const TensorDesc& out, cudaStream_t stream);
void launch_argmax(const TensorDesc& in, const TensorDesc& out, cudaStream_t stream);
void launch_log_softmax(const TensorDesc& in, const TensorDesc& out, cudaStream_t stream);
void launch_log_softmax_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst,
                                 cudaStream_t stream);
void launch_softmax_cross_entropy(const TensorDesc& logits, const TensorDesc& targets, const TensorDesc& probs,
                                  const TensorDesc& loss, ReduceScratch* scratch, KernelErrorRecord* error,
                                  cudaStream_t stream);
void launch_softmax_cross_entropy_backward(const TensorDesc& probs, const TensorDesc& targets,
                                           const TensorDesc& grad_loss, const TensorDesc& dlogits, cudaStream_t stream);

// cuda_optim.cu
// blocks_done: a device counter, 0 between launches (the backend's), for the device step count.
void launch_adam(std::span<const ParamBuffers> params, const AdamHyper& hyper, unsigned* blocks_done,
                 cudaStream_t stream);
void launch_sgd(std::span<const ParamBuffers> params, const SgdHyper& hyper, cudaStream_t stream);
void launch_unscale(std::span<const GradSpan> grads, const float* scale, float* found_inf, cudaStream_t stream);
void launch_update_scale(float* scale, std::int32_t* growth_tracker, const float* found_inf, double growth,
                         double backoff, std::int32_t interval, cudaStream_t stream);

}  // namespace accel::cuda_backend
