// Input checks shared by the ops: each throws the typed error with the op's name in it.
#pragma once

#include <string>

#include "accel/core/error.h"
#include "accel/tensor/tensor.h"

namespace accel::detail {

inline void check_float32(const char* op, const Tensor& t, const char* what) {
  if (t.dtype() != DType::Float32) {
    throw DTypeError(std::string(op) + ": " + what + " must be float32, got " + std::string(dtype_name(t.dtype())) +
                     "; convert with .to(DType::Float32)");
  }
}

inline void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.device() != b.device()) {
    throw DeviceError(std::string(op) + ": tensors are on different devices (" + a.device().to_string() + " and " +
                      b.device().to_string() + "); move one with .to(device)");
  }
}

// Strides that read `t` as if it had been broadcast to `shape` (0 on broadcast dims).
std::vector<std::int64_t> broadcast_strides(const Tensor& t, const Shape& shape);

}  // namespace accel::detail
