#include "accel/tensor/tensor.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>

#include "accel/autograd/engine.h"  // autograd::backward
#include "accel/autograd/node.h"    // autograd::record
#include "accel/backends/backend.h"
#include "accel/backends/kernel_recording.h"  // mark_uncapturable
#include "accel/core/checked_math.h"
#include "accel/core/error.h"
#include "accel/ops/ops.h"  // sum_to (the gradient of expand)
#include "accel/tensor/kernel_args.h"

namespace accel {

Storage::Storage(std::size_t nbytes, Device device)
    : allocator_(&backend_for(device).allocator()), nbytes_(nbytes), data_(allocator_->allocate(nbytes)) {}

Storage::~Storage() { allocator_->deallocate(data_, nbytes_); }

namespace {

std::shared_ptr<TensorImpl> make_impl(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  const auto nbytes = checked_mul<std::size_t>(static_cast<std::size_t>(shape.numel()), element_size(dtype));
  if (!nbytes)
    throw ShapeError("a " + std::string(dtype_name(dtype)) + " tensor of shape " + shape.to_string() +
                     " needs more than 2^64 bytes");
  impl->storage = std::make_shared<Storage>(*nbytes, device);
  impl->shape = shape;
  impl->strides = shape.contiguous_strides();
  impl->dtype = dtype;
  return impl;
}

// A view sharing storage; views of tensors that require grad are not tracked by autograd
// (ops build differentiable reshapes from these through their own nodes).
Tensor make_view(const Tensor& base, Shape shape, std::vector<std::int64_t> strides, std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

// Records a view's (or copy's) gradient rule when autograd tracks `base`.
Tensor tracked(Tensor out, const Tensor& base, const char* name, std::function<Tensor(const Tensor&)> rule) {
  autograd::record(name, out, {base}, [rule = std::move(rule)](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{rule(g)};
  });
  return out;
}

// The gradient of a view that picks some elements: zeros with `g` written through the view.
Tensor scatter_to_zeros(const Tensor& g, const Shape& in_shape, const std::function<Tensor(const Tensor&)>& view_of) {
  Tensor full_grad = zeros(in_shape, g.dtype(), g.device());
  const Tensor target = view_of(full_grad);
  backend_for(g.device()).copy(desc(g), desc(target), stream_of(g));
  return full_grad;
}

// Resolves at most one -1 in the requested sizes against numel; throws ShapeError naming
// both shapes when the element counts differ.
Shape infer_shape(std::vector<std::int64_t> sizes, std::int64_t numel, const Shape& from, const char* op) {
  std::int64_t known = 1;
  std::ptrdiff_t infer_at = -1;
  const auto requested = [&] {
    std::string out = "[";
    for (std::size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
    return out + "]";
  };
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == -1 && infer_at < 0) {
      infer_at = static_cast<std::ptrdiff_t>(i);
    } else if (sizes[i] < 0) {
      throw ShapeError(std::string(op) + ": invalid size in " + requested() + " (only one -1 is allowed)");
    } else {
      known *= sizes[i];
    }
  }
  if (infer_at >= 0) {
    if (known == 0 || numel % known != 0) {
      throw ShapeError(std::string(op) + ": cannot reshape " + from.to_string() + " (" + std::to_string(numel) +
                       " elements) to " + requested());
    }
    sizes[static_cast<std::size_t>(infer_at)] = numel / known;
    known = numel;
  }
  if (known != numel) {
    throw ShapeError(std::string(op) + ": cannot reshape " + from.to_string() + " (" + std::to_string(numel) +
                     " elements) to " + requested() + " (" + std::to_string(known) + " elements)");
  }
  return Shape(std::move(sizes));
}

}  // namespace

TensorImpl& Tensor::impl() const {
  if (!impl_) throw ValueError("this tensor is undefined (for example a grad() before backward())");
  return *impl_;
}

void Tensor::check_dtype(DType expected, const char* op) const {
  if (dtype() != expected) {
    throw DTypeError(std::string(op) + ": expected dtype " + std::string(dtype_name(expected)) + ", got " +
                     std::string(dtype_name(dtype())) +
                     "; convert with .to(DType::" + std::string(dtype_name(expected)) + ")");
  }
}

std::int64_t Tensor::size(std::int64_t d) const { return shape()[normalize_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  const auto expected = shape().contiguous_strides();
  for (std::size_t i = 0; i < dim(); ++i) {
    if (shape()[i] != 1 && strides()[i] != expected[i]) return false;
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + offset() * static_cast<std::int64_t>(element_size(dtype()));
}

double Tensor::item_double() const {
  mark_uncapturable("item() reads a value on the host");
  if (numel() != 1) {
    throw ShapeError("item: the tensor has " + std::to_string(numel()) + " elements " + shape().to_string() +
                     "; item() needs exactly one");
  }
  const Tensor host = to(kCPU).contiguous();
  if (dtype() == DType::Int64) return static_cast<double>(*host.data_ptr<std::int64_t>());
  return *host.to(DType::Float64).data_ptr<double>();
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  mark_uncapturable("to_vector() reads values on the host");
  Tensor host = to(kCPU).to(dtype_of<T>()).contiguous();
  const T* src = static_cast<const T*>(host.raw_data());
  std::vector<T> out(static_cast<std::size_t>(numel()));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = src[i];
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<std::int64_t> Tensor::to_vector<std::int64_t>() const;
template std::vector<std::int32_t> Tensor::to_vector<std::int32_t>() const;
template std::vector<std::uint8_t> Tensor::to_vector<std::uint8_t>() const;
template std::vector<bool> Tensor::to_vector<bool>() const;

Tensor Tensor::view(std::vector<std::int64_t> sizes) const {
  const Shape target = infer_shape(std::move(sizes), numel(), shape(), "view");
  if (!is_contiguous()) {
    throw ShapeError("view: the tensor " + shape().to_string() +
                     " is not contiguous (a transpose or slice); use reshape() or contiguous()");
  }
  const Shape in_shape = shape();
  return tracked(make_view(*this, target, target.contiguous_strides(), offset()), *this, "ViewBackward",
                 [in_shape](const Tensor& g) { return g.reshape(in_shape.sizes()); });
}

Tensor Tensor::reshape(std::vector<std::int64_t> sizes) const {
  return is_contiguous() ? view(std::move(sizes)) : contiguous().view(std::move(sizes));
}

Tensor Tensor::flatten(std::int64_t start_dim, std::int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  const std::size_t s = normalize_dim(start_dim, dim(), "flatten");
  const std::size_t e = normalize_dim(end_dim, dim(), "flatten");
  if (s > e)
    throw ShapeError("flatten: start_dim " + std::to_string(start_dim) + " is after end_dim " +
                     std::to_string(end_dim));
  std::vector<std::int64_t> sizes;
  for (std::size_t i = 0; i < s; ++i) sizes.push_back(shape()[i]);
  std::int64_t merged = 1;
  for (std::size_t i = s; i <= e; ++i) merged *= shape()[i];
  sizes.push_back(merged);
  for (std::size_t i = e + 1; i < dim(); ++i) sizes.push_back(shape()[i]);
  return reshape(sizes);
}

Tensor Tensor::transpose(std::int64_t dim0, std::int64_t dim1) const {
  const std::size_t a = normalize_dim(dim0, dim(), "transpose");
  const std::size_t b = normalize_dim(dim1, dim(), "transpose");
  auto sizes = shape().sizes();
  auto st = strides();
  std::swap(sizes[a], sizes[b]);
  std::swap(st[a], st[b]);
  return tracked(make_view(*this, Shape(sizes), st, offset()), *this, "TransposeBackward", [a, b](const Tensor& g) {
    return g.transpose(static_cast<std::int64_t>(a), static_cast<std::int64_t>(b));
  });
}

Tensor Tensor::permute(const std::vector<std::int64_t>& dims) const {
  if (dims.size() != dim()) {
    throw ShapeError("permute: got " + std::to_string(dims.size()) + " dims for a " + std::to_string(dim()) +
                     "-dim tensor " + shape().to_string());
  }
  std::vector<std::int64_t> sizes(dim()), st(dim()), inverse(dim(), -1);
  for (std::size_t i = 0; i < dim(); ++i) {
    const std::size_t from = normalize_dim(dims[i], dim(), "permute");
    if (inverse[from] != -1) throw ShapeError("permute: dim " + std::to_string(dims[i]) + " appears twice");
    inverse[from] = static_cast<std::int64_t>(i);
    sizes[i] = shape()[from];
    st[i] = strides()[from];
  }
  return tracked(make_view(*this, Shape(sizes), st, offset()), *this, "PermuteBackward",
                 [inverse](const Tensor& g) { return g.permute(inverse); });
}

Tensor Tensor::t() const {
  if (dim() != 2)
    throw ShapeError("t: expected a 2-D tensor, got " + shape().to_string() + "; use transpose(dim0, dim1)");
  return transpose(0, 1);
}

Tensor Tensor::slice(std::int64_t d, std::int64_t start, std::int64_t end, std::int64_t step) const {
  const std::size_t axis = normalize_dim(d, dim(), "slice");
  if (step <= 0) throw ValueError("slice: step must be positive, got " + std::to_string(step));
  const std::int64_t n = shape()[axis];
  const auto clamp = [n](std::int64_t v) {
    if (v < 0) v += n;
    return std::min(std::max<std::int64_t>(v, 0), n);
  };
  const std::int64_t lo = clamp(start);
  const std::int64_t hi = std::max(lo, clamp(end));
  auto sizes = shape().sizes();
  auto st = strides();
  sizes[axis] = (hi - lo + step - 1) / step;
  st[axis] *= step;
  const Shape s(sizes);
  const Shape in_shape = shape();
  return tracked(make_view(*this, s, st, offset() + lo * strides()[axis]), *this, "SliceBackward",
                 [=](const Tensor& g) {
                   return scatter_to_zeros(g, in_shape, [&](const Tensor& z) { return z.slice(d, lo, hi, step); });
                 });
}

Tensor Tensor::select(std::int64_t d, std::int64_t index) const {
  const std::size_t axis = normalize_dim(d, dim(), "select");
  const std::int64_t n = shape()[axis];
  if (index < -n || index >= n) {
    throw ShapeError("select: index " + std::to_string(index) + " is out of range for dim " + std::to_string(d) +
                     " of size " + std::to_string(n));
  }
  if (index < 0) index += n;
  std::vector<std::int64_t> sizes = shape().sizes();
  auto st = strides();
  const std::int64_t new_offset = offset() + index * st[axis];
  sizes.erase(sizes.begin() + static_cast<std::ptrdiff_t>(axis));
  st.erase(st.begin() + static_cast<std::ptrdiff_t>(axis));
  const Shape in_shape = shape();
  return tracked(make_view(*this, Shape(sizes), st, new_offset), *this, "SelectBackward", [=](const Tensor& g) {
    return scatter_to_zeros(g, in_shape, [&](const Tensor& z) { return z.select(d, index); });
  });
}

Tensor Tensor::expand(const Shape& target) const {
  if (target.ndim() < dim()) {
    throw ShapeError("expand: cannot expand " + shape().to_string() + " to fewer dims " + target.to_string());
  }
  const std::size_t lead = target.ndim() - dim();
  std::vector<std::int64_t> st(target.ndim(), 0);
  for (std::size_t i = 0; i < dim(); ++i) {
    if (shape()[i] == target[lead + i]) {
      st[lead + i] = strides()[i];
    } else if (shape()[i] != 1) {
      throw ShapeError("expand: dim " + std::to_string(i) + " of " + shape().to_string() + " has size " +
                       std::to_string(shape()[i]) + " and cannot become " + std::to_string(target[lead + i]) +
                       " (only size-1 dims expand)");
    }
  }
  const Shape in_shape = shape();
  return tracked(make_view(*this, target, st, offset()), *this, "ExpandBackward",
                 [in_shape](const Tensor& g) { return sum_to(g, in_shape); });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out(make_impl(shape(), target, device()));
  backend_for(device()).copy(desc(*this, "to"), desc(out, "to"), stream_of(out));
  if (!is_floating_point(target)) return out;  // integer results carry no gradient
  const DType source = dtype();
  return tracked(out, *this, "ToDTypeBackward", [source](const Tensor& g) {
    // Autocast's cast of a parameter: its gradient converted straight into the arena's slot.
    Tensor slot = autograd::gradient_destination(0);
    if (!slot.defined() || slot.dtype() != source || slot.shape() != g.shape() || !slot.is_contiguous()) {
      return g.to(source);
    }
    backend_for(g.device()).copy(desc(g, "to"), desc(slot, "to"), stream_of(slot));
    return slot;
  });
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor src = contiguous();
  Backend& to_backend = backend_for(target);  // throws DeviceError before anything is allocated
  Tensor out(make_impl(shape(), dtype(), target));
  const std::size_t nbytes = static_cast<std::size_t>(numel()) * element_size(dtype());
  if (device().is_cpu()) {
    to_backend.copy_from_host(out.raw_data(), src.raw_data(), nbytes, to_backend.default_stream());
    to_backend.synchronize(to_backend.default_stream());  // the host buffer may go away after return
  } else if (target.is_cpu()) {
    Backend& from_backend = backend_for(device());
    from_backend.copy_to_host(out.raw_data(), src.raw_data(), nbytes, from_backend.default_stream());
    from_backend.synchronize(from_backend.default_stream());  // the host reads it next
  } else {
    throw DeviceError("to: copies between two devices (" + device().to_string() + " -> " + target.to_string() +
                      ") go through the host: call .to(cpu) first");
  }
  const Device source = device();
  return tracked(out, *this, "ToDeviceBackward", [source](const Tensor& g) { return g.to(source); });
}

Tensor Tensor::clone() const {
  Tensor out(make_impl(shape(), dtype(), device()));
  backend_for(device()).copy(desc(*this, "clone"), desc(out, "clone"), stream_of(out));
  return tracked(out, *this, "CloneBackward", [](const Tensor& g) { return g; });
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

Tensor& Tensor::requires_grad_(bool requires_grad) {
  if (requires_grad && !is_floating_point(dtype())) {
    throw DTypeError("requires_grad_: only floating-point tensors can require gradients, this one is " +
                     std::string(dtype_name(dtype())));
  }
  if (!is_leaf() && !requires_grad) {
    throw ValueError("requires_grad_(false) on a non-leaf tensor: use detach()");
  }
  impl().requires_grad = requires_grad;
  return *this;
}

void Tensor::backward(const Tensor& gradient) const { autograd::backward(*this, gradient); }

std::string Tensor::to_string() const {
  std::ostringstream os;
  os << "tensor(";
  const std::vector<float> values = to(DType::Float32).to_vector<float>();
  constexpr std::size_t kShown = 12;
  os << "[";
  for (std::size_t i = 0; i < values.size() && i < kShown; ++i) os << (i ? ", " : "") << values[i];
  if (values.size() > kShown) os << ", ...";
  os << "], shape=" << shape().to_string() << ", dtype=" << dtype_name(dtype()) << ", device=" << device().to_string();
  if (requires_grad()) os << ", requires_grad=true";
  os << ")";
  return os.str();
}

// ---- creation --------------------------------------------------------------------------

Tensor empty(const Shape& shape, DType dtype, Device device) { return Tensor(make_impl(shape, dtype, device)); }

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor out = empty(shape, dtype, device);
  backend_for(device).fill(desc(out, "full"), value, stream_of(out));
  return out;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor scalar_tensor(double value, DType dtype, Device device) { return full(Shape{}, value, dtype, device); }

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  mark_uncapturable("a tensor filled on the host (random numbers, from_vector, arange)");
  if (step == 0.0) throw ValueError("arange: step must be nonzero");
  const double span = (end - start) / step;
  const auto n = static_cast<std::int64_t>(std::max(0.0, std::ceil(span)));
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = start + static_cast<double>(i) * step;
  Tensor as_float = empty(Shape{n}, DType::Float32);
  float* p = as_float.data_ptr<float>();
  if (dtype == DType::Int64) {
    Tensor out = empty(Shape{n}, DType::Int64);
    auto* q = out.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) q[i] = static_cast<std::int64_t>(values[static_cast<std::size_t>(i)]);
    return out.to(device);
  }
  for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(values[static_cast<std::size_t>(i)]);
  return as_float.to(dtype).to(device);
}

Tensor arange(std::int64_t end, DType dtype, Device device) {
  return arange(0.0, static_cast<double>(end), 1.0, dtype, device);
}

Tensor randn(const Shape& shape, Generator& gen, Device device) {
  mark_uncapturable("a tensor filled on the host (random numbers, from_vector, arange)");
  Tensor out = empty(shape, DType::Float32);
  float* p = out.data_ptr<float>();
  for (std::int64_t i = 0; i < out.numel(); ++i) p[i] = gen.normal();
  return out.to(device);
}

Tensor rand(const Shape& shape, Generator& gen, double low, double high, Device device) {
  mark_uncapturable("a tensor filled on the host (random numbers, from_vector, arange)");
  if (!(high >= low)) throw ValueError("rand: high must be >= low");
  Tensor out = empty(shape, DType::Float32);
  float* p = out.data_ptr<float>();
  const auto lo = static_cast<float>(low);
  const auto width = static_cast<float>(high - low);
  for (std::int64_t i = 0; i < out.numel(); ++i) p[i] = lo + width * gen.uniform();
  return out.to(device);
}

Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& gen, Device device) {
  mark_uncapturable("a tensor filled on the host (random numbers, from_vector, arange)");
  if (high <= low) {
    throw ValueError("randint: high (" + std::to_string(high) + ") must be greater than low (" + std::to_string(low) +
                     ")");
  }
  Tensor out = empty(shape, DType::Int64);
  auto* p = out.data_ptr<std::int64_t>();
  const auto range = static_cast<std::uint64_t>(high - low);
  for (std::int64_t i = 0; i < out.numel(); ++i) p[i] = low + static_cast<std::int64_t>(gen.below(range));
  return out.to(device);
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  mark_uncapturable("a tensor filled on the host (random numbers, from_vector, arange)");
  if (static_cast<std::int64_t>(values.size()) != shape.numel()) {
    throw ShapeError("from_vector: " + std::to_string(values.size()) + " values do not fill shape " +
                     shape.to_string() + " (" + std::to_string(shape.numel()) + " elements)");
  }
  Tensor out = empty(shape, dtype_of<T>());
  T* p = static_cast<T*>(out.raw_data());
  for (std::size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return out.to(device);
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, Device);
template Tensor from_vector<std::int64_t>(const std::vector<std::int64_t>&, const Shape&, Device);
template Tensor from_vector<std::int32_t>(const std::vector<std::int32_t>&, const Shape&, Device);
template Tensor from_vector<std::uint8_t>(const std::vector<std::uint8_t>&, const Shape&, Device);
template Tensor from_vector<bool>(const std::vector<bool>&, const Shape&, Device);

}  // namespace accel
