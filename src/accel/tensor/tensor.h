// Tensor: a cheap handle (shared storage + shape/strides/offset + dtype + device) with the
// autograd state PyTorch users expect (requires_grad, grad, grad_fn, backward).
//
//   Tensor x = randn({64, 784});
//   Tensor w = zeros({256, 784}).requires_grad_();
//   Tensor y = matmul(x, w.t());          // ops live in accel/ops/ops.h
//   y.sum().backward();                   // w.grad() now holds dL/dw
//
// Copies of a Tensor share everything (like PyTorch's Python objects); clone() copies data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "accel/core/device.h"
#include "accel/core/dtype.h"
#include "accel/core/error.h"
#include "accel/core/shape.h"
#include "accel/tensor/generator.h"
#include "accel/tensor/storage.h"

namespace accel {

namespace autograd {
class Node;
}
struct FlatArena;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  std::vector<std::int64_t> strides;  // in elements
  std::int64_t offset = 0;            // in elements
  DType dtype = DType::Float32;

  // Autograd: a leaf that requires grad accumulates into `grad`; a non-leaf result of a
  // differentiable op records the op in `grad_fn`.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;

  // Set on a leaf packed into a FlatArena (flat_arena.h): its gradient lives at `grad_home`,
  // a fixed view of the arena's gradient buffer, whenever it is not none.
  std::shared_ptr<const FlatArena> arena;
  std::shared_ptr<TensorImpl> grad_home;
};

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::Float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::Float64;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::Int64;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::Int32;
}
template <>
constexpr DType dtype_of<std::uint8_t>() {
  return DType::UInt8;
}
template <>
constexpr DType dtype_of<bool>() {
  return DType::Bool;
}

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (like an empty grad)
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  std::size_t dim() const { return shape().ndim(); }
  std::int64_t size(std::int64_t dim) const;
  std::int64_t numel() const { return shape().numel(); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  const std::vector<std::int64_t>& strides() const { return impl().strides; }
  std::int64_t offset() const { return impl().offset; }
  bool is_contiguous() const;

  // Raw pointer to the first element (device memory for device tensors).
  void* raw_data() const;
  // Typed pointer; throws DTypeError if T does not match dtype().
  template <typename T>
  T* data_ptr() const {
    check_dtype(dtype_of<T>(), "data_ptr");
    return static_cast<T*>(raw_data());
  }
  // The single value of a one-element tensor, copied to the host and converted to T.
  template <typename T>
  T item() const {
    return static_cast<T>(item_double());
  }
  double item_double() const;
  // All elements copied to the host and converted to T, in row-major order.
  template <typename T>
  std::vector<T> to_vector() const;

  // Views share storage with this tensor. view() requires a compatible (contiguous) layout;
  // reshape() copies when it must, as in PyTorch.
  // One size may be -1 (inferred). Pass shape.sizes() to reshape to a Shape.
  Tensor view(std::vector<std::int64_t> sizes) const;
  Tensor reshape(std::vector<std::int64_t> sizes) const;
  Tensor flatten(std::int64_t start_dim = 0, std::int64_t end_dim = -1) const;
  Tensor transpose(std::int64_t dim0, std::int64_t dim1) const;
  Tensor t() const;  // transpose of a 2-D tensor
  // Reorders dims: result dim i is this tensor's dim dims[i].
  Tensor permute(const std::vector<std::int64_t>& dims) const;
  // Elements start, start+step, ... below end along dim (negative start/end count from the end).
  Tensor slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step = 1) const;
  // Removes dim by picking one index of it.
  Tensor select(std::int64_t dim, std::int64_t index) const;
  // A view that repeats size-1 dims (stride 0) to `shape` (broadcasting, no copy).
  Tensor expand(const Shape& shape) const;
  Tensor contiguous() const;

  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor clone() const;
  // The same data with no autograd history.
  Tensor detach() const;

  // Autograd.
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& requires_grad_(bool requires_grad = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& grad) const { impl().grad = grad.impl_; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  // Computes gradients of this tensor (a scalar, unless `gradient` is given) with respect to
  // every leaf that requires grad, accumulating them into their grad().
  void backward(const Tensor& gradient = Tensor()) const;

  std::string to_string() const;

  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  void check_dtype(DType expected, const char* op) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Creation. Every function allocates through the device's backend allocator.
Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = kCPU);
// [start, end) in steps of `step`, as int64 unless dtype says otherwise.
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Int64, Device device = kCPU);
Tensor arange(std::int64_t end, DType dtype = DType::Int64, Device device = kCPU);
Tensor randn(const Shape& shape, Generator& gen = default_generator(), Device device = kCPU);
// Uniform in [low, high).
Tensor rand(const Shape& shape, Generator& gen = default_generator(), double low = 0.0, double high = 1.0,
            Device device = kCPU);
// Integers uniform in [low, high), int64.
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& gen = default_generator(),
               Device device = kCPU);
// A tensor holding a copy of `values` (numel must equal values.size()).
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = kCPU);
Tensor scalar_tensor(double value, DType dtype = DType::Float32, Device device = kCPU);

}  // namespace accel
