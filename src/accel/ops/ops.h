// The ops: each validates its inputs (shapes, dtypes, devices, with messages that name the op,
// both shapes and the fix), runs one backend kernel, and records its gradient rule.
//
//   Tensor logits = linear(relu(linear(x, w1, b1)), w2, b2);
//   Tensor loss = cross_entropy(logits, labels);
//   loss.backward();
//
// Math ops take float32; integer tensors reach them through .to(DType::Float32).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "accel/tensor/tensor.h"

namespace accel {

// ---- elementwise (broadcasting as NumPy/PyTorch) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double scalar);
Tensor mul(const Tensor& a, double scalar);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor relu(const Tensor& a);

// ---- in place, never recorded by autograd (gradient accumulation, optimizers) ----
// a += b (b broadcast to a's shape). Throws ValueError on a leaf that requires grad while
// grad mode is on, as PyTorch does.
void add_(Tensor& a, const Tensor& b);
void mul_(Tensor& a, double scalar);
void zero_(Tensor& a);
// dst = src (same shape, converting dtype), through dst's strides.
void copy_(Tensor& dst, const Tensor& src);

// ---- reductions ----
Tensor sum(const Tensor& a);  // all elements; int64 for integer/bool inputs
Tensor sum(const Tensor& a, const std::vector<std::int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& a);
Tensor mean(const Tensor& a, const std::vector<std::int64_t>& dims, bool keepdim = false);
// Sums a broadcast gradient back down to `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& a, const Shape& shape);
// Index of the maximum along dim, int64.
Tensor argmax(const Tensor& a, std::int64_t dim, bool keepdim = false);

// ---- indexing ----
// out[r] = source[rows[r]] along the first dimension, on source's device (a batch gathered from
// a data set kept there). source and out contiguous of one dtype (or uint8 images into float32,
// scaled to [0, 1] as the host loader does), out [len(rows), ...source's other dims], rows
// int64 on the same device. Not differentiable. An index out of range is a
// ValueError (on an asynchronous device, at its next synchronisation).
void take_rows_into(const Tensor& source, const Tensor& rows, const Tensor& out);

// ---- comparison ----
Tensor eq(const Tensor& a, const Tensor& b);  // bool, broadcasting

// ---- linear algebra ----
// [m, k] x [k, n] -> [m, n]; transposed views are passed to GEMM without a copy.
Tensor matmul(const Tensor& a, const Tensor& b);
// input [N, in], weight [out, in], bias [out] (optional) -> input * weight^T + bias, with the
// bias fused into the GEMM.
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor());
// relu(linear(...)) with the ReLU fused into the GEMM's epilogue and its gradient into the
// linear backward: nn::Sequential uses it for a Linear followed by a ReLU.
Tensor linear_relu(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor());
// Linear layers with a ReLU between each two (and after the last when relu_after_last), as one
// autograd node: on a GPU each hidden ReLU's gradient is fused into the next layer's
// input-gradient GEMM (cuBLASLt's RELU_AUX forward, DRELU_BGRAD backward). nn::Sequential uses
// it for a run of Linear, ReLU, Linear, ... layers.
struct LinearLayer {
  Tensor weight;  // [out_features, in_features]
  Tensor bias;    // [out_features], or undefined
};
Tensor mlp(const Tensor& input, std::span<const LinearLayer> layers, bool relu_after_last = false);

// ---- softmax and losses ----
Tensor log_softmax(const Tensor& a, std::int64_t dim);
Tensor softmax(const Tensor& a, std::int64_t dim);
// logits [N, C] float32, targets [N] int64 class indices -> mean loss (a scalar). Fused
// softmax + negative log-likelihood with a one-pass gradient.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);
// mean((input - target)^2)
Tensor mse_loss(const Tensor& input, const Tensor& target);

// ---- regularisation ----
// Zeroes each element with probability p and scales the rest by 1/(1-p) when training.
Tensor dropout(const Tensor& a, double p, bool training, Generator& gen = default_generator());
// The generator's dropout counters (masks drawn so far) by device ("cpu", "cuda:0"), for a
// checkpoint; set_dropout_counters puts them back (after Generator::set_state, which clears
// them), so a resumed run draws the masks an uninterrupted one would.
std::map<std::string, std::int64_t> dropout_counters(Generator& gen);
void set_dropout_counters(Generator& gen, const std::map<std::string, std::int64_t>& counters);

Tensor ones_like(const Tensor& a);
Tensor zeros_like(const Tensor& a);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

}  // namespace accel
