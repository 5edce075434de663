// The CUDA backend: every Backend kernel on an NVIDIA GPU. Memory comes from the device's
// caching allocator (memory/), GEMMs from cuBLASLt with fused bias/ReLU epilogues
// (cuda_gemm.h), everything else from this folder's kernels (cuda_kernels.h). Stream 0 is a
// stream the backend creates (blocking: ordered with the legacy default stream, and, unlike
// it, capturable into a CUDA Graph); every call is asynchronous on it. A kernel that finds a bad
// value (a class index out of range) records it on the device, raised as a ValueError at the
// next synchronize().
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "accel/backends/backend.h"
#include "accel/backends/cuda/cuda_kernels.h"

namespace accel::cuda_backend {

class GemmEngine;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index);
  ~CudaBackend() override;

  Device device() const override { return Device(DeviceType::CUDA, index_); }
  memory::Allocator& allocator() override;
  std::string gemm_library() override;  // "cuBLASLt (path)", or why it cannot be loaded
  // cuBLASLt fuses the ReLU mask in float32, bfloat16 and float16 (not float64).
  bool fuses_relu_mask(DType dtype) const override { return dtype != DType::Float64; }

  Stream copy_stream() override;
  void synchronize(const Stream& stream) override;
  Event record_event(const Stream& stream) override;
  void wait_event(const Stream& stream, const Event& event) override;
  bool event_done(const Event& event) override;
  void synchronize_event(const Event& event) override;
  void release_event(const Event& event) noexcept override;
  void* allocate_pinned(std::size_t nbytes) override;
  void free_pinned(void* ptr, std::size_t nbytes) noexcept override;
  std::unique_ptr<ReplayGraph> capture_graph(const std::function<void()>& calls, std::string* why_not) override;

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

 private:
  cudaStream_t stream_of(const Stream& stream) const;

  int index_;
  cudaStream_t stream_ = nullptr;              // Stream id 0
  cudaStream_t copy_stream_ = nullptr;         // copy_stream(): non-blocking, ordered by events only
  KernelErrorRecord* error_device_ = nullptr;  // kernels write it
  KernelErrorRecord* error_host_ = nullptr;    // pinned: synchronize() copies it here
  unsigned* adam_blocks_done_ = nullptr;       // device: Adam's blocks done (cuda_optim.cu), 0 between steps
  ReduceScratch* reduce_scratch_ = nullptr;    // device: cross-entropy's partial sums (cuda_reduce.cu)
  std::mutex mutex_;                           // guards gemm_, events_ and free_events_
  std::unique_ptr<GemmEngine> gemm_;           // made on the first GEMM (it loads cuBLASLt)
  std::vector<cudaEvent_t> events_;            // every event made, destroyed with the backend
  std::vector<cudaEvent_t> free_events_;       // released ones, recorded again before new ones are made
};

}  // namespace accel::cuda_backend
