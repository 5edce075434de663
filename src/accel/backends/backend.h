// Backend: the kernels one device type provides. The ops layer validates shapes and dtypes,
// decides layouts, and then calls exactly one of these per op; a backend only computes.
// Adding a device (CUDA) means one more folder implementing this interface.
//
// Conventions: pointers are device pointers of the backend's device; float kernels work on
// float32; "rows x cols" buffers are row-major and contiguous unless strides are passed.
// Reductions and softmax use the [outer, reduced, inner] decomposition of a contiguous tensor.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "accel/core/device.h"
#include "accel/core/dtype.h"
#include "accel/core/shape.h"
#include "accel/memory/allocator.h"

namespace accel {

enum class BinaryOp { Add, Sub, Mul, Div };
enum class UnaryOp { Relu, Neg, Exp, Log, Square };

// One parameter tensor's buffers for a fused optimizer step (all `numel` floats long).
struct ParamBuffers {
  float* param;
  const float* grad;
  float* exp_avg;     // Adam first moment or SGD momentum buffer (may be null for plain SGD)
  float* exp_avg_sq;  // Adam second moment (null for SGD)
  std::int64_t numel;
};

// Doubles, as PyTorch's Python scalars: the kernel derives 1 - beta, the bias corrections and
// 1 - lr * weight_decay in double and rounds each once (1.0f - 0.999f is 1.3e-5 off 0.001f).
struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled_weight_decay;  // AdamW
  std::int64_t step;            // 1-based, after incrementing
};

// One gradient buffer for the mixed-precision scaler (`numel` floats).
struct GradSpan {
  float* data;
  std::int64_t numel;
};

struct SgdHyper {
  float lr, momentum, dampening, weight_decay;
  bool nesterov;
  bool first_step;  // momentum buffers are initialised with the gradient on the first step
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual memory::Allocator& allocator() = 0;

  // Raw copies between this device and host memory.
  virtual void copy_from_host(void* dst, const void* host_src, std::size_t nbytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t nbytes) = 0;
  // dst = src over `shape`, both given by strides in elements, converting the dtype.
  virtual void copy_strided(const void* src, DType src_dtype, const Shape& shape,
                            const std::vector<std::int64_t>& src_strides, void* dst, DType dst_dtype,
                            const std::vector<std::int64_t>& dst_strides) = 0;
  virtual void fill(void* dst, DType dtype, std::int64_t n, double value) = 0;

  // out[i] = a[i] op b[i] over `shape`, a and b given by (possibly 0 = broadcast) strides.
  virtual void binary(BinaryOp op, const float* a, const std::vector<std::int64_t>& a_strides, const float* b,
                      const std::vector<std::int64_t>& b_strides, float* out, const Shape& shape) = 0;
  // out = a op scalar (contiguous).
  virtual void binary_scalar(BinaryOp op, const float* a, float scalar, float* out, std::int64_t n) = 0;
  virtual void unary(UnaryOp op, const float* in, float* out, std::int64_t n) = 0;
  // dst = grad where out > 0, else 0.
  virtual void relu_backward(const float* grad, const float* out, float* dst, std::int64_t n) = 0;
  // out[i] = (a[i] == b[i]) for a, b of `dtype` (contiguous, same length).
  virtual void eq(const void* a, const void* b, DType dtype, bool* out, std::int64_t n) = 0;

  // C = epilogue(op(A) * op(B)), row-major, op = transpose when the flag is set. The epilogue
  // adds `bias` (n floats, one per column, or null), then beta * C (beta 0 or 1: 1 accumulates
  // into C), then applies ReLU when `relu` is set, all fused into the GEMM.
  virtual void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                    std::int64_t lda, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
                    const float* bias = nullptr, float beta = 0.0f, bool relu = false) = 0;

  // out[o, i] = sum_r in[o, r, i] for float32 (out float32) or int64 (out int64).
  virtual void sum(const void* in, DType dtype, std::int64_t outer, std::int64_t reduced, std::int64_t inner,
                   void* out) = 0;
  // out[o, i] = argmax_r in[o, r, i] (first maximum wins, as PyTorch).
  virtual void argmax(const float* in, std::int64_t outer, std::int64_t reduced, std::int64_t inner,
                      std::int64_t* out) = 0;
  virtual void log_softmax(const float* in, std::int64_t outer, std::int64_t reduced, std::int64_t inner,
                           float* out) = 0;
  // dst = grad - exp(out) * sum_r grad.
  virtual void log_softmax_backward(const float* grad, const float* out, std::int64_t outer, std::int64_t reduced,
                                    std::int64_t inner, float* dst) = 0;

  // Fused softmax + cross-entropy over logits [rows, cols] with class-index targets:
  // writes softmax probabilities and the mean loss (one float at `loss`). Throws ValueError
  // for a target outside [0, cols).
  virtual void softmax_cross_entropy(const float* logits, const std::int64_t* targets, std::int64_t rows,
                                     std::int64_t cols, float* probs, float* loss) = 0;
  // dlogits = (probs - onehot(targets)) * scale, where scale = grad_of_loss / rows.
  virtual void softmax_cross_entropy_backward(const float* probs, const std::int64_t* targets, std::int64_t rows,
                                              std::int64_t cols, const float* grad_loss, float* dlogits) = 0;

  // One fused step over every parameter.
  virtual void adam_step(std::span<const ParamBuffers> params, const AdamHyper& hyper) = 0;
  virtual void sgd_step(std::span<const ParamBuffers> params, const SgdHyper& hyper) = 0;

  // Gradient scaling (amp::GradScaler), all on the device: multiplies every gradient by
  // 1 / *scale (computed in double, rounded once to float, as PyTorch's
  // scale.double().reciprocal().float()) and sets *found_inf to 1 when any element is inf or NaN
  // (PyTorch's _amp_foreach_non_finite_check_and_unscale_). Only reading found_inf synchronises.
  virtual void unscale_and_check_finite(std::span<const GradSpan> grads, const float* scale, float* found_inf) = 0;
  // PyTorch's _amp_update_scale_: after a step with inf/NaN, scale *= backoff and the tracker
  // restarts; after `interval` clean steps in a row, scale *= growth (if that stays finite).
  virtual void update_scale(float* scale, std::int32_t* growth_tracker, const float* found_inf, double growth,
                            double backoff, std::int32_t interval) = 0;
};

// The backend for a device; throws DeviceError when that device is not available
// ("no CUDA device: ..." on a machine without one, or a build without CUDA).
Backend& backend_for(Device device);

// Threads the CPU kernels (and oneDNN) use; 0 means all cores.
void set_num_threads(int threads);
int get_num_threads();

}  // namespace accel
