#include "accel/core/shape.h"

#include <algorithm>

#include "accel/core/checked_math.h"
#include "accel/core/error.h"

namespace accel {

Shape::Shape(std::initializer_list<std::int64_t> sizes) : Shape(std::vector<std::int64_t>(sizes)) {}

Shape::Shape(std::vector<std::int64_t> sizes) : sizes_(std::move(sizes)) {
  // Every size product a tensor computes (its element count, its strides, which skip empty
  // dimensions) is checked here once, so numel() and contiguous_strides() cannot wrap.
  std::int64_t elements = 1, span = 1;
  for (std::int64_t s : sizes_) {
    if (s < 0) throw ShapeError("shape " + to_string() + " has a negative size");
    const auto e = checked_mul<std::int64_t>(elements, s);
    const auto p = checked_mul<std::int64_t>(span, std::max<std::int64_t>(s, 1));
    if (!e || !p) throw ShapeError("shape " + to_string() + " has more than 2^63 - 1 elements");
    elements = *e;
    span = *p;
  }
  numel_ = elements;
}

std::vector<std::int64_t> Shape::contiguous_strides() const {
  std::vector<std::int64_t> strides(sizes_.size());
  std::int64_t stride = 1;
  for (std::size_t i = sizes_.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<std::int64_t>(sizes_[i], 1);
  }
  return strides;
}

std::string Shape::to_string() const {
  std::string out = "[";
  for (std::size_t i = 0; i < sizes_.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(sizes_[i]);
  }
  return out + "]";
}

std::size_t normalize_dim(std::int64_t dim, std::size_t ndim, const char* op) {
  const auto n = static_cast<std::int64_t>(ndim);
  const std::int64_t d = dim < 0 ? dim + n : dim;
  if (d < 0 || d >= n) {
    throw ShapeError(std::string(op) + ": dim " + std::to_string(dim) + " is out of range for a " +
                     std::to_string(ndim) + "-dim tensor (valid: " + std::to_string(-n) + " to " +
                     std::to_string(n - 1) + ")");
  }
  return static_cast<std::size_t>(d);
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t n = std::max(a.ndim(), b.ndim());
  std::vector<std::int64_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t sa = i < n - a.ndim() ? 1 : a[i - (n - a.ndim())];
    const std::int64_t sb = i < n - b.ndim() ? 1 : b[i - (n - b.ndim())];
    if (sa != sb && sa != 1 && sb != 1) {
      throw ShapeError(std::string(op) + ": shapes " + a.to_string() + " and " + b.to_string() +
                       " cannot be broadcast (dim " + std::to_string(i) + ": " + std::to_string(sa) + " vs " +
                       std::to_string(sb) + ")");
    }
    out[i] = sa == 1 ? sb : sa;
  }
  return Shape(std::move(out));
}

}  // namespace accel
