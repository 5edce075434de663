// matmul and linear on the backend's GEMM.
#include "accel/autograd/node.h"
#include "accel/backends/backend.h"
#include "accel/ops/autocast.h"
#include "accel/ops/checks.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

namespace accel {
namespace {

// How GEMM should read a 2-D operand without copying it: row-major (lead = row stride) or as
// the transpose of a row-major matrix (a .t() view). Anything else is made contiguous.
struct GemmOperand {
  Tensor tensor;
  bool transposed;
  std::int64_t lead;
};

GemmOperand as_gemm_operand(const Tensor& t) {
  const auto& st = t.strides();
  const std::int64_t rows = t.shape()[0], cols = t.shape()[1];
  if ((st[1] == 1 || cols == 1) && st[0] >= std::max<std::int64_t>(cols, 1)) return {t, false, st[0]};
  if ((st[0] == 1 || rows == 1) && st[1] >= std::max<std::int64_t>(rows, 1)) return {t, true, st[1]};
  const Tensor c = t.contiguous();
  return {c, false, std::max<std::int64_t>(cols, 1)};
}

// out = epilogue(a @ b): the one GEMM call every op here makes. `a_row_sums`, when given, also
// receives a's row sums (GemmEpilogue::a_row_sums; a contiguous or a .t() of a contiguous tensor).
void gemm_into(const Tensor& a, const Tensor& b, Tensor& out, const Tensor& bias = Tensor(), bool relu = false,
               const Tensor& a_row_sums = Tensor()) {
  // The operand's strides as GEMM reads them: the unit stride on the right dim even where a
  // size-1 dim carries another stride. Both operands are held until the GEMM has run: one that
  // needed a contiguous copy would otherwise free it first, and the other's copy could take
  // the same block.
  const GemmOperand a_operand = as_gemm_operand(a), b_operand = as_gemm_operand(b);
  const auto operand = [](const GemmOperand& g) {
    TensorDesc d = desc(g.tensor, "gemm");
    d.strides[0] = g.transposed ? 1 : g.lead;
    d.strides[1] = g.transposed ? g.lead : 1;
    return d;
  };
  const TensorDesc bias_desc = bias.defined() ? desc(bias, "gemm") : TensorDesc{};
  const TensorDesc sums_desc = a_row_sums.defined() ? desc(a_row_sums, "gemm") : TensorDesc{};
  const GemmEpilogue epilogue{bias.defined() ? &bias_desc : nullptr, 0.0f, relu,
                              a_row_sums.defined() ? &sums_desc : nullptr};
  TensorDesc c = desc(out, "gemm");
  c.strides[0] = std::max<std::int64_t>(out.shape()[1], 1);
  c.strides[1] = 1;
  backend_for(out.device()).gemm(operand(a_operand), operand(b_operand), c, epilogue, stream_of(out));
}

Tensor mm(const Tensor& a, const Tensor& b) {
  Tensor out = empty(Shape{a.shape()[0], b.shape()[1]}, a.dtype(), a.device());
  if (a.shape()[1] == 0) {
    zero_(out);
  } else {
    gemm_into(a, b, out);
  }
  return out;
}

Tensor linear_impl(const Tensor& input_, const Tensor& weight_, const Tensor& bias_, bool fuse_relu) {
  using amp::autocast_input, amp::CastPolicy;
  const Tensor input = autocast_input(input_, CastPolicy::LowerPrecision);
  const Tensor weight = autocast_input(weight_, CastPolicy::LowerPrecision);
  const Tensor bias = autocast_input(bias_, CastPolicy::LowerPrecision);
  const char* op = fuse_relu ? "linear_relu" : "linear";
  detail::check_floating(op, input, "input");
  detail::check_same_dtype(op, input, "input", weight, "weight");
  detail::check_same_device(op, input, weight);
  if (weight.dim() != 2) {
    throw ShapeError(std::string(op) + ": weight must be 2-D [out_features, in_features], got " +
                     weight.shape().to_string());
  }
  const std::int64_t in_features = weight.shape()[1];
  if (input.dim() != 2) {
    throw ShapeError(std::string(op) + ": expected input [N, " + std::to_string(in_features) + "], got " +
                     input.shape().to_string() + "; add nn::Flatten() or reshape it to [N, " +
                     std::to_string(in_features) + "]");
  }
  if (input.shape()[1] != in_features) {
    throw ShapeError(std::string(op) + ": input " + input.shape().to_string() + " has " +
                     std::to_string(input.shape()[1]) + " features but weight " + weight.shape().to_string() +
                     " expects " + std::to_string(in_features));
  }
  const std::int64_t out_features = weight.shape()[0];
  Tensor b;
  if (bias.defined()) {
    detail::check_same_dtype(op, input, "input", bias, "bias");
    detail::check_same_device(op, input, bias);
    if (bias.shape() != Shape{out_features}) {
      throw ShapeError(std::string(op) + ": bias must be [" + std::to_string(out_features) + "], got " +
                       bias.shape().to_string());
    }
    b = bias.detach().contiguous();
  }
  Tensor out = empty(Shape{input.shape()[0], out_features}, input.dtype(), input.device());
  if (in_features > 0) {
    gemm_into(input.detach(), weight.detach().t(), out, b, fuse_relu);
  } else {  // an empty product: the bias alone
    zero_(out);
    if (b.defined()) out = add(out, b.detach());
    if (fuse_relu) out = relu(out);
  }
  autograd::record(fuse_relu ? "LinearReluBackward" : "LinearBackward", out, {input, weight, bias},
                   [x = input.detach(), w = weight.detach(), y = fuse_relu ? out.detach() : Tensor()](
                       const Tensor& grad_output, const std::vector<bool>& need) {
                     const Tensor g =
                         y.defined() ? detail::relu_grad(grad_output, y) : detail::as_dtype_of(grad_output, x);
                     Tensor gx, gw, gb;
                     if (need[0]) gx = mm(g, w);
                     // The weight's and the bias's gradients straight into their arena slots where
                     // they have them, the bias's (g's column sums) from the weight's GEMM.
                     const auto slot_for = [&](std::size_t input, const Shape& shape) {
                       Tensor slot = autograd::gradient_destination(input);
                       const bool fits =
                           slot.defined() && slot.shape() == shape && slot.dtype() == g.dtype() && slot.is_contiguous();
                       return fits ? slot : empty(shape, g.dtype(), g.device());
                     };
                     if (need[1] && x.shape()[0] > 0) {
                       gw = slot_for(1, w.shape());
                       if (need[2] && g.is_contiguous()) gb = slot_for(2, Shape{w.shape()[0]});
                       gemm_into(g.t(), x, gw, Tensor(), false, gb);
                     } else if (need[1]) {
                       gw = mm(g.t(), x);
                     }
                     if (need[2] && !gb.defined()) gb = sum(g, {0});
                     return std::vector<Tensor>{gx, gw, gb};
                   });
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a_, const Tensor& b_) {
  const Tensor a = amp::autocast_input(a_, amp::CastPolicy::LowerPrecision);
  const Tensor b = amp::autocast_input(b_, amp::CastPolicy::LowerPrecision);
  detail::check_floating("matmul", a, "first operand");
  detail::check_same_dtype("matmul", a, "the first operand", b, "the second");
  detail::check_same_device("matmul", a, b);
  if (a.dim() != 2 || b.dim() != 2) {
    throw ShapeError("matmul: expected two 2-D tensors, got " + a.shape().to_string() + " and " +
                     b.shape().to_string() + "; reshape or flatten them first");
  }
  if (a.shape()[1] != b.shape()[0]) {
    throw ShapeError("matmul: shapes " + a.shape().to_string() + " and " + b.shape().to_string() +
                     " cannot be multiplied (" + std::to_string(a.shape()[1]) + " != " + std::to_string(b.shape()[0]) +
                     ")");
  }
  Tensor out = mm(a.detach(), b.detach());
  autograd::record("MatmulBackward", out, {a, b},
                   [a = a.detach(), b = b.detach()](const Tensor& g, const std::vector<bool>& need) {
                     return std::vector<Tensor>{need[0] ? mm(g, b.t()) : Tensor(), need[1] ? mm(a.t(), g) : Tensor()};
                   });
  return out;
}

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  return linear_impl(input, weight, bias, false);
}

Tensor linear_relu(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  return linear_impl(input, weight, bias, true);
}

}  // namespace accel
