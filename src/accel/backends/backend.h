// Backend: the kernels one device type provides. The ops layer validates shapes and dtypes,
// decides layouts and the result dtype, and then calls exactly one of these per op; a backend
// only computes. A device type is one folder implementing this interface and registering it
// (backend_registry.h).
//
// Conventions: kernels take TensorDesc (device pointer, dtype, sizes, strides) and the Stream
// to run on. Unless a comment says otherwise, a kernel's tensors share one dtype, any of
// float32, float64, bfloat16, float16 (16-bit types compute in float32 and round once when
// stored), outputs are contiguous, and inputs are contiguous or read through the strides
// given. Reductions and softmax take [outer, reduced, inner] views of contiguous tensors.
// A kernel never throws for a bad value in device memory (a class index out of range): it
// records the error in the backend, which raises it at the next synchronisation point: when
// the call returns on a synchronous backend (the CPU), at synchronize() on an asynchronous one.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "accel/backends/tensor_desc.h"
#include "accel/core/device.h"
#include "accel/core/dtype.h"
#include "accel/core/shape.h"
#include "accel/memory/allocator.h"

namespace accel {

enum class BinaryOp { Add, Sub, Mul, Div };
enum class UnaryOp { Relu, Neg, Exp, Log, Square };

// The fused epilogue of a GEMM: C = relu?(A B + bias + beta C).
struct GemmEpilogue {
  const TensorDesc* bias = nullptr;  // [n], the output's dtype, or null
  float beta = 0.0f;                 // 0 or 1 (1 accumulates into C)
  bool relu = false;
  // When set ([m], C's dtype, contiguous), the call also writes A's row sums there (over k,
  // float32 accumulation): a linear layer's bias gradient, from the GEMM of its weight gradient
  // (A = g^T), which cuBLASLt fuses into that GEMM. A must then be contiguous or the transpose
  // of a contiguous matrix (gemm_row_sums.h), and bias and relu unset.
  const TensorDesc* a_row_sums = nullptr;
  // A ReLU mask (uint8 [m, relu_mask_row_bytes(n)], contiguous; backends/relu_mask.h). With
  // relu set, the call also writes C's mask there (cuBLASLt's RELU_AUX). With relu unset, it
  // reads it: C = (A B) where the mask's bit is set, else 0 (the gradient through the ReLU whose
  // mask it is: DRELU), and with bias_gradient set ([n], C's dtype, contiguous) also C's column
  // sums there (float32 accumulation; that ReLU's layer's bias gradient: DRELU_BGRAD). Reading
  // the mask asks for no bias, beta 0 and no a_row_sums.
  const TensorDesc* relu_mask = nullptr;
  const TensorDesc* bias_gradient = nullptr;
};

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
  // When set, the step count lives on the device: the kernel increments *device_step and uses
  // it instead of `step` (a captured step replays without the host).
  std::int64_t* device_step = nullptr;
  // When set and *found_inf != 0 (GradScaler found an inf/NaN gradient), the kernel changes
  // nothing, the count included: the skip is decided on the device, with no host read.
  const float* found_inf = nullptr;
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

// A recorded list of kernel calls made into one launch (a CUDA Graph).
class ReplayGraph {
 public:
  virtual ~ReplayGraph() = default;
  virtual void launch() = 0;  // runs every captured call, in order, on the stream captured
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual memory::Allocator& allocator() = 0;
  // What computes this backend's GEMMs, for reports ("oneDNN 2.6.3 (avx512_core_bf16)").
  virtual std::string gemm_library() = 0;
  // Whether a linear layer followed by a ReLU should keep the ReLU's mask for its backward
  // (GemmEpilogue::relu_mask), so the next layer's input-gradient GEMM applies the ReLU's
  // gradient: where the GEMM library fuses it (cuBLASLt), and on sim, whose tests cover the path.
  // Where it does not, the gradient is a relu_backward over the saved activations.
  virtual bool fuses_relu_mask(DType dtype) const {
    (void)dtype;
    return false;
  }

  // ---- streams and events ----
  Stream default_stream() const { return Stream{device(), 0}; }
  // A second stream, for copies that overlap the default stream's kernels (a loader's
  // host-to-device copies); the default stream itself where calls are not asynchronous.
  virtual Stream copy_stream() { return default_stream(); }
  // Waits for the stream's work, then raises any error a kernel recorded (a typed Error).
  virtual void synchronize(const Stream& stream) = 0;
  // An event after the work queued on `stream` so far. The caller owns it until release_event
  // (after which the backend may record it again).
  virtual Event record_event(const Stream& stream) = 0;
  // Work queued on `stream` after this call starts only after `event` has completed.
  virtual void wait_event(const Stream& stream, const Event& event) = 0;
  virtual bool event_done(const Event& event) = 0;         // without waiting
  virtual void synchronize_event(const Event& event) = 0;  // the host waits for it
  virtual void release_event(const Event& event) noexcept = 0;

  // ---- pinned host memory (page-locked: a copy from it runs by DMA, not through the CPU) ----
  // For the host buffers of asynchronous copies; ordinary host memory where copies are not
  // asynchronous. OutOfMemoryError when the machine cannot give it.
  virtual void* allocate_pinned(std::size_t nbytes) = 0;
  virtual void free_pinned(void* ptr, std::size_t nbytes) noexcept = 0;
  // Captures what `calls` queue on the default stream as one graph, without running it. Null
  // where calls run directly (the CPU: *why_not left empty) or the calls cannot be captured
  // (*why_not says why; then run them directly).
  virtual std::unique_ptr<ReplayGraph> capture_graph(const std::function<void()>& calls, std::string* why_not) {
    (void)calls;
    (void)why_not;
    return nullptr;
  }

  // ---- copies (asynchronous on the stream: host buffers stay valid until it synchronises) ----
  virtual void copy_from_host(void* dst, const void* host_src, std::size_t nbytes, const Stream& stream) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t nbytes, const Stream& stream) = 0;
  // dst = src elementwise over dst's sizes, through both strides, converting any dtype to any.
  virtual void copy(const TensorDesc& src, const TensorDesc& dst, const Stream& stream) = 0;
  virtual void fill(const TensorDesc& dst, double value, const Stream& stream) = 0;  // any dtype, contiguous
  // dst [rows, features] = src [n, features] at rows `index` (int64 [rows]): a batch gathered
  // from a data set on the device. src and dst contiguous, of one dtype (any), or src uint8
  // images and dst float32: each pixel scaled to [0, 1] as core/pixels.h's pixel_to_unit (the
  // host loader's, bit for bit). An index outside [0, n) is a recorded kernel error
  // (ValueError), its row left as it was.
  virtual void gather_rows(const TensorDesc& src, const TensorDesc& index, const TensorDesc& dst,
                           const Stream& stream) = 0;
  // Dropout's mask on the device (contiguous, floating): element i is 1 / (1 - p) when the
  // Philox draw (core/philox.h) for (seed, *offset + i / 4, lane i % 4) is below 1 - p, else 0;
  // then *offset (device memory) grows by the blocks used, so a replayed recording draws anew.
  virtual void dropout_mask(const TensorDesc& dst, double p, std::uint64_t seed, std::uint64_t* offset,
                            const Stream& stream) = 0;

  // ---- elementwise ----
  // out = a op b over out's sizes; a and b are read through their strides (0 = broadcast).
  // Add/Sub/Mul also take int64/int32/uint8 (computed in that type).
  virtual void binary(BinaryOp op, const TensorDesc& a, const TensorDesc& b, const TensorDesc& out,
                      const Stream& stream) = 0;
  // out = a op scalar, the scalar in the compute type (float32 for 16-bit types, as PyTorch).
  virtual void binary_scalar(BinaryOp op, const TensorDesc& a, double scalar, const TensorDesc& out,
                             const Stream& stream) = 0;
  // Neg/Relu/Square also take integer types.
  virtual void unary(UnaryOp op, const TensorDesc& in, const TensorDesc& out, const Stream& stream) = 0;
  // dst = grad where out > 0, else 0.
  virtual void relu_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst,
                             const Stream& stream) = 0;
  // out (bool) = (a == b); a and b contiguous of one dtype (any).
  virtual void eq(const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, const Stream& stream) = 0;

  // ---- GEMM ----
  // C [m, n] = epilogue(A [m, k] B [k, n]). A and B are read through their strides: each must
  // have a unit stride in one of its two dims (row-major, or the transpose of a row-major
  // matrix); C is row-major with its row stride. One dtype for all (float32 accumulation).
  virtual void gemm(const TensorDesc& a, const TensorDesc& b, const TensorDesc& c, const GemmEpilogue& epilogue,
                    const Stream& stream) = 0;

  // ---- reductions over in [outer, reduced, inner] (contiguous) ----
  // out [outer, inner] = sum over reduced: floating types accumulate in float32 (float64 in
  // float64); int64 in int64.
  virtual void sum(const TensorDesc& in, const TensorDesc& out, const Stream& stream) = 0;
  // out (int64) [outer, inner] = argmax over reduced (first maximum wins; NaN is the maximum).
  virtual void argmax(const TensorDesc& in, const TensorDesc& out, const Stream& stream) = 0;
  virtual void log_softmax(const TensorDesc& in, const TensorDesc& out, const Stream& stream) = 0;
  // dst = grad - exp(out) * sum_r grad (all three [outer, reduced, inner]).
  virtual void log_softmax_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst,
                                    const Stream& stream) = 0;

  // Fused softmax + cross-entropy over logits [rows, cols] with int64 class targets [rows]:
  // writes the softmax probabilities (the logits' dtype) and the mean loss (one value of the
  // logits' dtype). A target outside [0, cols) is a recorded kernel error (ValueError).
  virtual void softmax_cross_entropy(const TensorDesc& logits, const TensorDesc& targets, const TensorDesc& probs,
                                     const TensorDesc& loss, const Stream& stream) = 0;
  // dlogits = (probs - onehot(targets)) * grad_loss / rows.
  virtual void softmax_cross_entropy_backward(const TensorDesc& probs, const TensorDesc& targets,
                                              const TensorDesc& grad_loss, const TensorDesc& dlogits,
                                              const Stream& stream) = 0;

  // ---- optimizers (float32 master buffers) ----
  virtual void adam_step(std::span<const ParamBuffers> params, const AdamHyper& hyper, const Stream& stream) = 0;
  virtual void sgd_step(std::span<const ParamBuffers> params, const SgdHyper& hyper, const Stream& stream) = 0;

  // Gradient scaling (amp::GradScaler), all on the device: multiplies every gradient by
  // 1 / *scale (computed in double, rounded once to float, as PyTorch's
  // scale.double().reciprocal().float()) and sets *found_inf to 1 when any element is inf or NaN
  // (PyTorch's _amp_foreach_non_finite_check_and_unscale_). Only reading found_inf synchronises.
  virtual void unscale_and_check_finite(std::span<const GradSpan> grads, const float* scale, float* found_inf,
                                        const Stream& stream) = 0;
  // PyTorch's _amp_update_scale_: after a step with inf/NaN, scale *= backoff and the tracker
  // restarts; after `interval` clean steps in a row, scale *= growth (if that stays finite).
  virtual void update_scale(float* scale, std::int32_t* growth_tracker, const float* found_inf, double growth,
                            double backoff, std::int32_t interval, const Stream& stream) = 0;
};

// The backend for a device; throws DeviceError when that device is not available
// ("no CUDA device: ..." on a machine without one, or a build without CUDA).
Backend& backend_for(Device device);

// Threads the CPU kernels (and oneDNN) use; 0 means all cores.
void set_num_threads(int threads);
int get_num_threads();

}  // namespace accel
