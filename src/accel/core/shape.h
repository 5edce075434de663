// Shape: the sizes of a tensor's dimensions. A cheap value type with the helpers every op
// needs to validate its input and to report it ("[64, 784]").
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace accel {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> sizes);
  explicit Shape(std::vector<std::int64_t> sizes);

  std::size_t ndim() const { return sizes_.size(); }
  std::int64_t operator[](std::size_t dim) const { return sizes_[dim]; }
  // The product of the sizes (checked at construction); 1 for a scalar (0-dim) shape.
  std::int64_t numel() const { return numel_; }
  const std::vector<std::int64_t>& sizes() const { return sizes_; }

  // Strides of a row-major (C-contiguous) layout of this shape.
  std::vector<std::int64_t> contiguous_strides() const;

  // "[64, 784]"
  std::string to_string() const;

  bool operator==(const Shape& other) const = default;

 private:
  std::vector<std::int64_t> sizes_;
  std::int64_t numel_ = 1;
};

// Maps a possibly negative dimension index (-1 = last) into [0, ndim); throws ShapeError
// naming the op when it is out of range.
std::size_t normalize_dim(std::int64_t dim, std::size_t ndim, const char* op);

// The NumPy/PyTorch broadcast of two shapes; throws ShapeError naming the op and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace accel
