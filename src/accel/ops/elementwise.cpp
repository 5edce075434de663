// Elementwise ops and their gradient rules, in every dtype PyTorch computes them in: operands
// are promoted to the result type (promote_types), integer division and exp/log of integers
// give float32, and each gradient is returned in its input's dtype.
#include <map>
#include <memory>

#include "accel/autograd/grad_mode.h"
#include "accel/autograd/node.h"
#include "accel/backends/backend.h"
#include "accel/backends/kernel_recording.h"  // mark_uncapturable
#include "accel/ops/autocast.h"
#include "accel/ops/checks.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

namespace accel {

namespace detail {
std::vector<std::int64_t> broadcast_strides(const Tensor& t, const Shape& shape) {
  std::vector<std::int64_t> strides(shape.ndim(), 0);
  const std::size_t lead = shape.ndim() - t.dim();
  for (std::size_t i = 0; i < t.dim(); ++i) {
    if (t.shape()[i] != 1) strides[lead + i] = t.strides()[i];
  }
  return strides;
}

Tensor as_dtype_of(const Tensor& grad, const Tensor& input) {
  return grad.dtype() == input.dtype() ? grad : grad.to(input.dtype());
}
}  // namespace detail

namespace {

using autograd::record;
using detail::as_dtype_of;
using detail::check_same_device;

void check_not_bool(const char* op, DType dtype) {
  if (dtype == DType::Bool) {
    throw DTypeError(std::string(op) +
                     ": arithmetic on bool tensors is not supported; convert with .to(DType::Int64) "
                     "or .to(DType::Float32)");
  }
}

Tensor binary_forward(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  check_same_device(name, a, b);
  DType common = detail::result_type(a, b);
  if (op == BinaryOp::Div && !is_floating_point(common)) common = DType::Float32;  // true division, as PyTorch
  check_not_bool(name, common);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  const Tensor x = a.detach().to(common), y = b.detach().to(common);
  Tensor out = empty(shape, common, a.device());
  backend_for(a.device())
      .binary(op, desc_broadcast(x, shape, name), desc_broadcast(y, shape, name), desc(out, name), stream_of(out));
  return out;
}

// Integers with a scalar compute in float32 here (PyTorch keeps an integer type for an
// integer scalar).
Tensor scalar_forward(BinaryOp op, const char* name, const Tensor& a, double scalar) {
  check_not_bool(name, a.dtype());
  const Tensor in = (is_floating_point(a.dtype()) ? a.detach() : a.detach().to(DType::Float32)).contiguous();
  Tensor out = empty(a.shape(), in.dtype(), a.device());
  backend_for(a.device()).binary_scalar(op, desc(in, name), scalar, desc(out, name), stream_of(out));
  return out;
}

Tensor unary_forward(UnaryOp op, const char* name, const Tensor& a) {
  check_not_bool(name, a.dtype());
  const bool needs_float = (op == UnaryOp::Exp || op == UnaryOp::Log) && !is_floating_point(a.dtype());
  const Tensor in = (needs_float ? a.detach().to(DType::Float32) : a.detach()).contiguous();
  Tensor out = empty(a.shape(), in.dtype(), a.device());
  backend_for(a.device()).unary(op, desc(in, name), desc(out, name), stream_of(out));
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Add, "add", a, b);
  record("AddBackward", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g, const std::vector<bool>& need) {
    return std::vector<Tensor>{need[0] ? as_dtype_of(sum_to(g, a.shape()), a) : Tensor(),
                               need[1] ? as_dtype_of(sum_to(g, b.shape()), b) : Tensor()};
  });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Sub, "sub", a, b);
  record("SubBackward", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g, const std::vector<bool>& need) {
    return std::vector<Tensor>{need[0] ? as_dtype_of(sum_to(g, a.shape()), a) : Tensor(),
                               need[1] ? as_dtype_of(neg(sum_to(g, b.shape())), b) : Tensor()};
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Mul, "mul", a, b);
  record("MulBackward", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g, const std::vector<bool>& need) {
    return std::vector<Tensor>{need[0] ? as_dtype_of(sum_to(mul(g, b), a.shape()), a) : Tensor(),
                               need[1] ? as_dtype_of(sum_to(mul(g, a), b.shape()), b) : Tensor()};
  });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Div, "div", a, b);
  record("DivBackward", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g, const std::vector<bool>& need) {
    Tensor ga, gb;
    if (need[0]) ga = as_dtype_of(sum_to(div(g, b), a.shape()), a);
    if (need[1]) gb = as_dtype_of(sum_to(neg(div(mul(g, a), mul(b, b))), b.shape()), b);
    return std::vector<Tensor>{ga, gb};
  });
  return out;
}

Tensor add(const Tensor& a, double scalar) {
  Tensor out = scalar_forward(BinaryOp::Add, "add", a, scalar);
  record("AddScalarBackward", out, {a},
         [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g}; });
  return out;
}

Tensor mul(const Tensor& a, double scalar) {
  Tensor out = scalar_forward(BinaryOp::Mul, "mul", a, scalar);
  record("MulScalarBackward", out, {a},
         [scalar](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{mul(g, scalar)}; });
  return out;
}

Tensor neg(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Neg, "neg", a);
  record("NegBackward", out, {a},
         [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{neg(g)}; });
  return out;
}

Tensor exp(const Tensor& a_) {
  const Tensor a = amp::autocast_input(a_, amp::CastPolicy::Float32);
  Tensor out = unary_forward(UnaryOp::Exp, "exp", a);
  record("ExpBackward", out, {a},
         [out = out.detach()](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{mul(g, out)}; });
  return out;
}

Tensor log(const Tensor& a_) {
  const Tensor a = amp::autocast_input(a_, amp::CastPolicy::Float32);
  Tensor out = unary_forward(UnaryOp::Log, "log", a);
  record("LogBackward", out, {a},
         [a = a.detach()](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{div(g, a)}; });
  return out;
}

namespace detail {
Tensor relu_grad(const Tensor& g, const Tensor& out) {
  const Tensor grad = g.dtype() == out.dtype() ? g.contiguous() : g.to(out.dtype()).contiguous();
  Tensor dx = empty(out.shape(), out.dtype(), out.device());
  backend_for(out.device())
      .relu_backward(desc(grad, "relu_backward"), desc(out, "relu_backward"), desc(dx, "relu_backward"), stream_of(dx));
  return dx;
}
}  // namespace detail

Tensor relu(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Relu, "relu", a);
  record("ReluBackward", out, {a}, [out = out.detach()](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{detail::relu_grad(g, out)};
  });
  return out;
}

// ---- in place ----

namespace {
void check_inplace(const char* op, const Tensor& a) {
  if (autograd::is_grad_enabled() && a.requires_grad()) {
    throw ValueError(std::string(op) +
                     ": a tensor that requires grad cannot be changed in place "
                     "while autograd records; wrap the update in NoGradGuard");
  }
}
}  // namespace

void add_(Tensor& a, const Tensor& b) {
  check_inplace("add_", a);
  check_same_device("add_", a, b);
  check_not_bool("add_", a.dtype());
  const DType result = detail::result_type(a, b);
  if (detail::dtype_category(result) > detail::dtype_category(a.dtype())) {
    throw DTypeError("add_: the result type " + std::string(dtype_name(result)) + " cannot be cast to the " +
                     std::string(dtype_name(a.dtype())) + " destination (PyTorch's rule: not to a lower category)");
  }
  if (broadcast_shapes(a.shape(), b.shape(), "add_") != a.shape()) {
    throw ShapeError("add_: source " + b.shape().to_string() + " does not broadcast to the destination " +
                     a.shape().to_string());
  }
  if (!a.is_contiguous()) throw ValueError("add_: the destination must be contiguous");
  if (result != a.dtype()) {  // computed in the result type, then rounded into the destination once
    autograd::NoGradGuard no_grad;
    copy_(a, add(a.detach(), b.detach()));
    return;
  }
  const Tensor source = b.detach().to(a.dtype());
  backend_for(a.device())
      .binary(BinaryOp::Add, desc(a, "add_"), desc_broadcast(source, a.shape(), "add_"), desc(a, "add_"), stream_of(a));
}

void mul_(Tensor& a, double scalar) {
  check_inplace("mul_", a);
  if (!is_floating_point(a.dtype())) {
    throw DTypeError("mul_: the destination must be floating point, got " + std::string(dtype_name(a.dtype())));
  }
  if (!a.is_contiguous()) throw ValueError("mul_: the destination must be contiguous");
  backend_for(a.device()).binary_scalar(BinaryOp::Mul, desc(a, "mul_"), scalar, desc(a, "mul_"), stream_of(a));
}

void zero_(Tensor& a) {
  check_inplace("zero_", a);
  if (!a.is_contiguous()) throw ValueError("zero_: the destination must be contiguous");
  backend_for(a.device()).fill(desc(a, "zero_"), 0.0, stream_of(a));
}

void copy_(Tensor& dst, const Tensor& src) {
  check_inplace("copy_", dst);
  if (dst.shape() != src.shape()) {
    throw ShapeError("copy_: source " + src.shape().to_string() + " and destination " + dst.shape().to_string() +
                     " differ in shape");
  }
  const Tensor from = src.detach().to(dst.device());
  backend_for(dst.device()).copy(desc(from, "copy_"), desc(dst, "copy_"), stream_of(dst));
}

Tensor ones_like(const Tensor& a) { return ones(a.shape(), a.dtype(), a.device()); }
Tensor zeros_like(const Tensor& a) { return zeros(a.shape(), a.dtype(), a.device()); }

// The generator's Philox counter on a device: one uint64 in device memory that the mask kernel
// advances, so a recorded step draws a new mask on each replay.
struct DeviceRandomState {
  std::map<std::string, Tensor> counters;  // device name -> [1] int64
};

namespace {

Tensor& philox_counter(Generator& gen, Device device) {
  if (!gen.device_state()) gen.device_state() = std::make_shared<DeviceRandomState>();
  auto& counters = gen.device_state()->counters;
  auto it = counters.find(device.to_string());
  if (it == counters.end()) it = counters.emplace(device.to_string(), zeros({1}, DType::Int64, device)).first;
  return it->second;
}

}  // namespace

std::map<std::string, std::int64_t> dropout_counters(Generator& gen) {
  std::map<std::string, std::int64_t> out;
  if (!gen.device_state()) return out;
  for (const auto& [device, counter] : gen.device_state()->counters) {
    out[device] = counter.to(kCPU).item<std::int64_t>();
  }
  return out;
}

void set_dropout_counters(Generator& gen, const std::map<std::string, std::int64_t>& counters) {
  for (const auto& [device, value] : counters) {
    Tensor& counter = philox_counter(gen, Device(device));
    copy_(counter, from_vector(std::vector<std::int64_t>{value}, {1}));
  }
}

Tensor dropout(const Tensor& a, double p, bool training, Generator& gen) {
  if (p < 0.0 || p > 1.0) throw ValueError("dropout: p must be in [0, 1], got " + std::to_string(p));
  if (!training || p == 0.0) return a;
  if (p == 1.0) return mul(a, 0.0);
  // The mask is drawn on a's device from the generator's seed and a counter kept there: no
  // host work, so a captured step records it (and replays with new masks).
  const DType mask_dtype = is_floating_point(a.dtype()) ? a.dtype() : DType::Float32;
  Tensor counter = philox_counter(gen, a.device());
  Tensor mask = empty(a.shape(), mask_dtype, a.device());
  backend_for(a.device())
      .dropout_mask(desc(mask, "dropout"), p, gen.seed(), static_cast<std::uint64_t*>(counter.raw_data()),
                    stream_of(mask));
  return mul(a, mask);
}

}  // namespace accel
