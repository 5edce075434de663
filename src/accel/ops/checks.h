// Input checks shared by the ops: each throws the typed error with the op's name in it.
#pragma once

#include <string>

#include "accel/core/error.h"
#include "accel/tensor/tensor.h"

namespace accel::detail {

inline void check_floating(const char* op, const Tensor& t, const char* what) {
  if (!is_floating_point(t.dtype())) {
    throw DTypeError(std::string(op) + ": " + what +
                     " must be floating point (float32, float64, bfloat16, float16), got " +
                     std::string(dtype_name(t.dtype())) + "; convert with .to(DType::Float32)");
  }
}

// Operands that must share one floating dtype (GEMMs: PyTorch does not promote them either).
inline void check_same_dtype(const char* op, const Tensor& a, const char* what_a, const Tensor& b, const char* what_b) {
  if (a.dtype() != b.dtype()) {
    throw DTypeError(std::string(op) + ": " + what_a + " is " + std::string(dtype_name(a.dtype())) + " but " + what_b +
                     " is " + std::string(dtype_name(b.dtype())) +
                     "; convert one with .to(dtype), or run the op under amp::autocast");
  }
}

inline void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.device() != b.device()) {
    throw DeviceError(std::string(op) + ": tensors are on different devices (" + a.device().to_string() + " and " +
                      b.device().to_string() + "); move one with .to(device)");
  }
}

// PyTorch's result type of a binary op: promote_types, except that a 0-dim operand gives way to
// a dimensioned one of the same or a higher category (bool < integer < floating):
// bf16_tensor + scalar_tensor(1.0) stays bfloat16, f32_tensor * f64_0dim stays float32.
inline int dtype_category(DType t) { return t == DType::Bool ? 0 : is_floating_point(t) ? 2 : 1; }
inline DType result_type(const Tensor& a, const Tensor& b) {
  if ((a.dim() == 0) != (b.dim() == 0)) {
    const Tensor& dimensioned = a.dim() == 0 ? b : a;
    const Tensor& zero_dim = a.dim() == 0 ? a : b;
    if (dtype_category(zero_dim.dtype()) <= dtype_category(dimensioned.dtype())) return dimensioned.dtype();
    return zero_dim.dtype();
  }
  return promote_types(a.dtype(), b.dtype());
}

// Strides that read `t` as if it had been broadcast to `shape` (0 on broadcast dims).
std::vector<std::int64_t> broadcast_strides(const Tensor& t, const Shape& shape);

// A gradient in its input's dtype (a float32 gradient of a bfloat16 input is rounded to it).
Tensor as_dtype_of(const Tensor& grad, const Tensor& input);

// dL/d(pre-activation) from dL/d(output) of a ReLU whose output is `out`.
Tensor relu_grad(const Tensor& g, const Tensor& out);

}  // namespace accel::detail
