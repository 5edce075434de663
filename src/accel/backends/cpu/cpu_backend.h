// The CPU backend: oneDNN for GEMM, OpenMP-parallel vectorised loops for the rest. OpenMP is
// the only thread pool in the process (oneDNN uses it too), so no two pools spin against each
// other on a small machine. Every kernel completes before its call returns: streams are
// always idle, events always complete, and a recorded kernel error is raised on return.
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "accel/backends/backend.h"
#include "accel/core/parallel.h"  // parallel_for, kParallelThreshold

namespace accel::cpu {

class CpuBackend : public Backend {
 public:
  Device device() const override { return kCPU; }
  memory::Allocator& allocator() override { return memory::host_allocator(); }
  std::string gemm_library() override;

  void synchronize(const Stream& stream) override;
  Event record_event(const Stream& stream) override { return Event{stream.device, 0}; }
  void wait_event(const Stream&, const Event&) override {}
  bool event_done(const Event&) override { return true; }
  void synchronize_event(const Event&) override {}
  void release_event(const Event&) noexcept override {}
  void* allocate_pinned(std::size_t nbytes) override { return memory::host_allocator().allocate(nbytes); }
  void free_pinned(void* ptr, std::size_t nbytes) noexcept override {
    memory::host_allocator().deallocate(ptr, nbytes);
  }

  void copy_from_host(void* dst, const void* host_src, std::size_t nbytes, const Stream& stream) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t nbytes, const Stream& stream) override;
  void copy(const TensorDesc& src, const TensorDesc& dst, const Stream& stream) override;
  void fill(const TensorDesc& dst, double value, const Stream& stream) override;
  void gather_rows(const TensorDesc& src, const TensorDesc& index, const TensorDesc& dst,
                   const Stream& stream) override;
  void dropout_mask(const TensorDesc& dst, double p, std::uint64_t seed, std::uint64_t* offset,
                    const Stream& stream) override;

  void binary(BinaryOp op, const TensorDesc& a, const TensorDesc& b, const TensorDesc& out,
              const Stream& stream) override;
  void binary_scalar(BinaryOp op, const TensorDesc& a, double scalar, const TensorDesc& out,
                     const Stream& stream) override;
  void unary(UnaryOp op, const TensorDesc& in, const TensorDesc& out, const Stream& stream) override;
  void relu_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst,
                     const Stream& stream) override;
  void eq(const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, const Stream& stream) override;

  void gemm(const TensorDesc& a, const TensorDesc& b, const TensorDesc& c, const GemmEpilogue& epilogue,
            const Stream& stream) override;

  void sum(const TensorDesc& in, const TensorDesc& out, const Stream& stream) override;
  void argmax(const TensorDesc& in, const TensorDesc& out, const Stream& stream) override;
  void log_softmax(const TensorDesc& in, const TensorDesc& out, const Stream& stream) override;
  void log_softmax_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst,
                            const Stream& stream) override;
  void softmax_cross_entropy(const TensorDesc& logits, const TensorDesc& targets, const TensorDesc& probs,
                             const TensorDesc& loss, const Stream& stream) override;
  void softmax_cross_entropy_backward(const TensorDesc& probs, const TensorDesc& targets, const TensorDesc& grad_loss,
                                      const TensorDesc& dlogits, const Stream& stream) override;

  void adam_step(std::span<const ParamBuffers> params, const AdamHyper& hyper, const Stream& stream) override;
  void sgd_step(std::span<const ParamBuffers> params, const SgdHyper& hyper, const Stream& stream) override;
  void unscale_and_check_finite(std::span<const GradSpan> grads, const float* scale, float* found_inf,
                                const Stream& stream) override;
  void update_scale(float* scale, std::int32_t* growth_tracker, const float* found_inf, double growth, double backoff,
                    std::int32_t interval, const Stream& stream) override;

 protected:
  // A kernel's report of bad data; the first one since this thread's last synchronisation is
  // kept (per thread: the CPU's calls are synchronous, so the caller's thread raises its own).
  void record_kernel_error(std::string message);
};

CpuBackend& backend();

// The GEMM library and the instruction set it runs on this CPU, e.g. "oneDNN 2.6.3 (avx2)",
// for benchmark records.
std::string gemm_library_description();

}  // namespace accel::cpu
