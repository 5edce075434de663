// The CPU backend: oneDNN for GEMM, OpenMP-parallel vectorised loops for the rest. OpenMP is
// the only thread pool in the process (oneDNN uses it too), so no two pools spin against each
// other on a small machine.
#pragma once

#include <string>

#include "accel/backends/backend.h"
#include "accel/core/parallel.h"  // parallel_for, kParallelThreshold

namespace accel::cpu {

class CpuBackend : public Backend {
 public:
  Device device() const override { return kCPU; }
  memory::Allocator& allocator() override { return memory::host_allocator(); }

  void copy_from_host(void* dst, const void* host_src, std::size_t nbytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t nbytes) override;
  void copy_strided(const void* src, DType src_dtype, const Shape& shape, const std::vector<std::int64_t>& src_strides,
                    void* dst, DType dst_dtype, const std::vector<std::int64_t>& dst_strides) override;
  void fill(void* dst, DType dtype, std::int64_t n, double value) override;

  void binary(BinaryOp op, const float* a, const std::vector<std::int64_t>& a_strides, const float* b,
              const std::vector<std::int64_t>& b_strides, float* out, const Shape& shape) override;
  void binary_scalar(BinaryOp op, const float* a, float scalar, float* out, std::int64_t n) override;
  void unary(UnaryOp op, const float* in, float* out, std::int64_t n) override;
  void relu_backward(const float* grad, const float* out, float* dst, std::int64_t n) override;
  void eq(const void* a, const void* b, DType dtype, bool* out, std::int64_t n) override;

  void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
            std::int64_t lda, const float* b, std::int64_t ldb, float* c, std::int64_t ldc, const float* bias,
            float beta, bool relu) override;

  void sum(const void* in, DType dtype, std::int64_t outer, std::int64_t reduced, std::int64_t inner,
           void* out) override;
  void argmax(const float* in, std::int64_t outer, std::int64_t reduced, std::int64_t inner,
              std::int64_t* out) override;
  void log_softmax(const float* in, std::int64_t outer, std::int64_t reduced, std::int64_t inner, float* out) override;
  void log_softmax_backward(const float* grad, const float* out, std::int64_t outer, std::int64_t reduced,
                            std::int64_t inner, float* dst) override;
  void softmax_cross_entropy(const float* logits, const std::int64_t* targets, std::int64_t rows, std::int64_t cols,
                             float* probs, float* loss) override;
  void softmax_cross_entropy_backward(const float* probs, const std::int64_t* targets, std::int64_t rows,
                                      std::int64_t cols, const float* grad_loss, float* dlogits) override;

  void adam_step(std::span<const ParamBuffers> params, const AdamHyper& hyper) override;
  void sgd_step(std::span<const ParamBuffers> params, const SgdHyper& hyper) override;
  void unscale_and_check_finite(std::span<const GradSpan> grads, const float* scale, float* found_inf) override;
  void update_scale(float* scale, std::int32_t* growth_tracker, const float* found_inf, double growth, double backoff,
                    std::int32_t interval) override;
};

CpuBackend& backend();

// The GEMM library and the instruction set it runs on this CPU, e.g. "oneDNN 2.6.3 (avx2)",
// for benchmark records.
std::string gemm_library_description();

}  // namespace accel::cpu
