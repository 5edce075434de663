#include "accel/tensor/kernel_args.h"

#include <string>

#include "accel/backends/kernel_recording.h"

namespace accel {
namespace {

TensorDesc make(const Tensor& t, const std::vector<std::int64_t>& sizes, const std::vector<std::int64_t>& strides,
                const char* op) {
  if (sizes.size() > static_cast<std::size_t>(kMaxDims)) {
    throw ShapeError(std::string(op) + ": tensors of up to " + std::to_string(kMaxDims) + " dims are supported, got " +
                     std::to_string(sizes.size()) + " dims; reshape to fewer");
  }
  // A replay writes here again: memory from before the capture must outlive the recording.
  if (is_capturing() && !from_capture_pool(t.impl().storage->allocator())) retain_for_replay(t.impl().storage);
  TensorDesc d;
  d.data = t.raw_data();
  d.dtype = t.dtype();
  d.ndim = static_cast<int>(sizes.size());
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    d.sizes[i] = sizes[i];
    d.strides[i] = strides[i];
  }
  return d;
}

}  // namespace

TensorDesc desc(const Tensor& t, const char* op) { return make(t, t.shape().sizes(), t.strides(), op); }

TensorDesc desc_broadcast(const Tensor& t, const Shape& shape, const char* op) {
  std::vector<std::int64_t> strides(shape.ndim(), 0);
  const std::size_t lead = shape.ndim() - t.dim();
  for (std::size_t i = 0; i < t.dim(); ++i) {
    if (t.shape()[i] != 1) strides[lead + i] = t.strides()[i];
  }
  return make(t, shape.sizes(), strides, op);
}

TensorDesc desc_as(const Tensor& t, const std::vector<std::int64_t>& sizes, const char* op) {
  if (!t.is_contiguous()) throw ValueError(std::string(op) + ": desc_as needs a contiguous tensor");
  return make(t, sizes, Shape(sizes).contiguous_strides(), op);
}

}  // namespace accel
