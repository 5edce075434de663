// The backend of a simulated device ("sim:N"): the CPU kernels over memory from the device's
// caching allocator, whose capacity is simulated. Its pointers are not host addresses
// (memory/simulated_memory.h): every call translates them before the CPU kernel runs, so
// only this class ever turns a sim pointer into host memory. Everything a user sees names the
// device "simulated".
#pragma once

#include "accel/backends/cpu/cpu_backend.h"

namespace accel::cpu {

class SimBackend final : public CpuBackend {
 public:
  explicit SimBackend(int index) : index_(index) {}
  Device device() const override { return Device(DeviceType::Sim, index_); }
  memory::Allocator& allocator() override;
  bool fuses_relu_mask(DType) const override { return true; }  // so CI runs the mask's path

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
  int index_;
};

SimBackend& sim_backend(int index);

}  // namespace accel::cpu
