// Elementwise ops and their gradient rules.
#include "accel/autograd/grad_mode.h"
#include "accel/autograd/node.h"
#include "accel/backends/backend.h"
#include "accel/ops/checks.h"
#include "accel/ops/ops.h"

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
}  // namespace detail

namespace {

using autograd::record;
using detail::broadcast_strides;
using detail::check_float32;
using detail::check_same_device;

Tensor binary_forward(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  check_float32(name, a, "first operand");
  check_float32(name, b, "second operand");
  check_same_device(name, a, b);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, DType::Float32, a.device());
  backend_for(a.device())
      .binary(op, a.data_ptr<float>(), broadcast_strides(a, shape), b.data_ptr<float>(), broadcast_strides(b, shape),
              out.data_ptr<float>(), shape);
  return out;
}

Tensor scalar_forward(BinaryOp op, const char* name, const Tensor& a, double scalar) {
  check_float32(name, a, "input");
  const Tensor in = a.contiguous();
  Tensor out = empty(a.shape(), DType::Float32, a.device());
  backend_for(a.device())
      .binary_scalar(op, in.data_ptr<float>(), static_cast<float>(scalar), out.data_ptr<float>(), a.numel());
  return out;
}

Tensor unary_forward(UnaryOp op, const char* name, const Tensor& a) {
  check_float32(name, a, "input");
  const Tensor in = a.contiguous();
  Tensor out = empty(a.shape(), DType::Float32, a.device());
  backend_for(a.device()).unary(op, in.data_ptr<float>(), out.data_ptr<float>(), a.numel());
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Add, "add", a, b);
  record("AddBackward", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<bool>& need) {
    return std::vector<Tensor>{need[0] ? sum_to(g, sa) : Tensor(), need[1] ? sum_to(g, sb) : Tensor()};
  });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Sub, "sub", a, b);
  record("SubBackward", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<bool>& need) {
    return std::vector<Tensor>{need[0] ? sum_to(g, sa) : Tensor(), need[1] ? neg(sum_to(g, sb)) : Tensor()};
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Mul, "mul", a, b);
  record("MulBackward", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g, const std::vector<bool>& need) {
    return std::vector<Tensor>{need[0] ? sum_to(mul(g, b), a.shape()) : Tensor(),
                               need[1] ? sum_to(mul(g, a), b.shape()) : Tensor()};
  });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Div, "div", a, b);
  record("DivBackward", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g, const std::vector<bool>& need) {
    Tensor ga, gb;
    if (need[0]) ga = sum_to(div(g, b), a.shape());
    if (need[1]) gb = sum_to(neg(div(mul(g, a), mul(b, b))), b.shape());
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

Tensor exp(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Exp, "exp", a);
  record("ExpBackward", out, {a},
         [out = out.detach()](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{mul(g, out)}; });
  return out;
}

Tensor log(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Log, "log", a);
  record("LogBackward", out, {a},
         [a = a.detach()](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{div(g, a)}; });
  return out;
}

Tensor relu(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Relu, "relu", a);
  record("ReluBackward", out, {a}, [out = out.detach()](const Tensor& g, const std::vector<bool>&) {
    const Tensor grad = g.contiguous();
    Tensor dx = empty(out.shape(), DType::Float32, out.device());
    backend_for(out.device())
        .relu_backward(grad.data_ptr<float>(), out.data_ptr<float>(), dx.data_ptr<float>(), out.numel());
    return std::vector<Tensor>{dx};
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
  check_float32("add_", a, "destination");
  check_float32("add_", b, "source");
  check_same_device("add_", a, b);
  if (broadcast_shapes(a.shape(), b.shape(), "add_") != a.shape()) {
    throw ShapeError("add_: source " + b.shape().to_string() + " does not broadcast to the destination " +
                     a.shape().to_string());
  }
  if (!a.is_contiguous()) throw ValueError("add_: the destination must be contiguous");
  backend_for(a.device())
      .binary(BinaryOp::Add, a.data_ptr<float>(), a.strides(), b.data_ptr<float>(), broadcast_strides(b, a.shape()),
              a.data_ptr<float>(), a.shape());
}

void mul_(Tensor& a, double scalar) {
  check_inplace("mul_", a);
  check_float32("mul_", a, "destination");
  if (!a.is_contiguous()) throw ValueError("mul_: the destination must be contiguous");
  backend_for(a.device())
      .binary_scalar(BinaryOp::Mul, a.data_ptr<float>(), static_cast<float>(scalar), a.data_ptr<float>(), a.numel());
}

void zero_(Tensor& a) {
  check_inplace("zero_", a);
  if (!a.is_contiguous()) throw ValueError("zero_: the destination must be contiguous");
  backend_for(a.device()).fill(a.raw_data(), a.dtype(), a.numel(), 0.0);
}

void copy_(Tensor& dst, const Tensor& src) {
  check_inplace("copy_", dst);
  if (dst.shape() != src.shape()) {
    throw ShapeError("copy_: source " + src.shape().to_string() + " and destination " + dst.shape().to_string() +
                     " differ in shape");
  }
  const Tensor from = src.to(dst.device());
  backend_for(dst.device())
      .copy_strided(from.raw_data(), from.dtype(), from.shape(), from.strides(), dst.raw_data(), dst.dtype(),
                    dst.strides());
}

Tensor ones_like(const Tensor& a) { return ones(a.shape(), a.dtype(), a.device()); }
Tensor zeros_like(const Tensor& a) { return zeros(a.shape(), a.dtype(), a.device()); }

Tensor dropout(const Tensor& a, double p, bool training, Generator& gen) {
  if (p < 0.0 || p > 1.0) throw ValueError("dropout: p must be in [0, 1], got " + std::to_string(p));
  if (!training || p == 0.0) return a;
  if (p == 1.0) return mul(a, 0.0);
  Tensor mask = empty(a.shape(), DType::Float32);
  float* m = mask.data_ptr<float>();
  const auto keep = static_cast<float>(1.0 - p);
  const auto scale = static_cast<float>(1.0 / (1.0 - p));
  for (std::int64_t i = 0; i < mask.numel(); ++i) m[i] = gen.uniform() < keep ? scale : 0.0f;
  return mul(a, mask.to(a.device()));
}

}  // namespace accel
