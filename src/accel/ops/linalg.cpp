// matmul and linear on the backend's GEMM.
#include "accel/autograd/grad_mode.h"
#include "accel/autograd/node.h"
#include "accel/backends/backend.h"
#include "accel/backends/relu_mask.h"
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

// The epilogue's tensors of one gemm_into call (GemmEpilogue's fields, as tensors).
struct GemmExtras {
  Tensor bias = {};
  bool relu = false;
  Tensor a_row_sums = {};     // a contiguous or a .t() of a contiguous tensor
  Tensor relu_mask = {};      // written with relu, else read (backends/relu_mask.h)
  Tensor bias_gradient = {};  // C's column sums, with a mask read
};

// out = epilogue(a @ b): the one GEMM call every op here makes.
void gemm_into(const Tensor& a, const Tensor& b, Tensor& out, const GemmExtras& extras = {}) {
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
  const auto optional_desc = [](const Tensor& t) { return t.defined() ? desc(t, "gemm") : TensorDesc{}; };
  const TensorDesc bias = optional_desc(extras.bias), sums = optional_desc(extras.a_row_sums),
                   mask = optional_desc(extras.relu_mask), bias_gradient = optional_desc(extras.bias_gradient);
  const auto pointer = [](const Tensor& t, const TensorDesc& d) { return t.defined() ? &d : nullptr; };
  const GemmEpilogue epilogue{pointer(extras.bias, bias),
                              0.0f,
                              extras.relu,
                              pointer(extras.a_row_sums, sums),
                              pointer(extras.relu_mask, mask),
                              pointer(extras.bias_gradient, bias_gradient)};
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

// One layer's operands, autocast, checked and detached.
struct CheckedLayer {
  Tensor weight, bias;  // bias contiguous, or undefined
};

CheckedLayer check_layer(const char* op, const Tensor& input, const Tensor& weight, const Tensor& bias,
                         std::size_t index, std::size_t count) {
  const std::string which = count > 1 ? std::string(op) + ", layer " + std::to_string(index) : std::string(op);
  detail::check_same_dtype(which.c_str(), input, "input", weight, "weight");
  detail::check_same_device(which.c_str(), input, weight);
  if (weight.dim() != 2) {
    throw ShapeError(which + ": weight must be 2-D [out_features, in_features], got " + weight.shape().to_string());
  }
  const std::int64_t in_features = weight.shape()[1];
  if (input.shape()[1] != in_features) {
    throw ShapeError(which + ": input " + input.shape().to_string() + " has " + std::to_string(input.shape()[1]) +
                     " features but weight " + weight.shape().to_string() + " expects " + std::to_string(in_features));
  }
  CheckedLayer layer{weight.detach(), Tensor()};
  if (bias.defined()) {
    detail::check_same_dtype(which.c_str(), input, "input", bias, "bias");
    detail::check_same_device(which.c_str(), input, bias);
    if (bias.shape() != Shape{weight.shape()[0]}) {
      throw ShapeError(which + ": bias must be [" + std::to_string(weight.shape()[0]) + "], got " +
                       bias.shape().to_string());
    }
    layer.bias = bias.detach().contiguous();
  }
  return layer;
}

// relu?(x W^T + b) for one layer, writing the ReLU's mask when `mask` is given.
Tensor layer_forward(const Tensor& x, const CheckedLayer& layer, bool relu, const Tensor& mask) {
  Tensor out = empty(Shape{x.shape()[0], layer.weight.shape()[0]}, x.dtype(), x.device());
  if (layer.weight.shape()[1] > 0) {
    gemm_into(x, layer.weight.t(), out, {.bias = layer.bias, .relu = relu, .relu_mask = mask});
    return out;
  }
  zero_(out);  // an empty product: the bias alone
  if (layer.bias.defined()) out = add(out, layer.bias);
  return relu ? accel::relu(out) : out;
}

// The linear layers of mlp() as one autograd node: on a backend that fuses the ReLU's mask
// (Backend::fuses_relu_mask), each hidden layer's forward GEMM writes its ReLU's mask and the
// next layer's input-gradient GEMM applies it (and writes that layer's bias gradient), so the
// ReLUs' gradients cost no kernel of their own; elsewhere they are relu_backward over the saved
// activations. One layer is linear() or linear_relu().
Tensor mlp_impl(const char* op, const Tensor& input_, std::span<const LinearLayer> layers_, bool relu_after_last) {
  using amp::autocast_input, amp::CastPolicy;
  if (layers_.empty()) throw ValueError(std::string(op) + ": no layers");
  const Tensor input = autocast_input(input_, CastPolicy::LowerPrecision);
  detail::check_floating(op, input, "input");
  const std::int64_t first_in = layers_[0].weight.dim() == 2 ? layers_[0].weight.shape()[1] : -1;
  if (input.dim() != 2) {
    throw ShapeError(std::string(op) + ": expected input [N, " + std::to_string(first_in) + "], got " +
                     input.shape().to_string() + "; add nn::Flatten() or reshape it to [N, " +
                     std::to_string(first_in) + "]");
  }
  const std::size_t count = layers_.size();
  const std::int64_t rows = input.shape()[0];
  // Masks only where a backward will read them (not under NoGradGuard, nor for inference).
  const auto requires_grad = [](const Tensor& t) { return t.defined() && t.requires_grad(); };
  bool any_requires_grad = requires_grad(input_);
  for (const LinearLayer& layer : layers_) {
    any_requires_grad = any_requires_grad || requires_grad(layer.weight) || requires_grad(layer.bias);
  }
  const bool recording = autograd::is_grad_enabled() && any_requires_grad;
  const bool masks = recording && rows > 0 && backend_for(input.device()).fuses_relu_mask(input.dtype());
  std::vector<Tensor> node_inputs{input};
  std::vector<CheckedLayer> layers;
  std::vector<Tensor> layer_inputs{input.detach()};  // layer i's input: x, then each hidden activation
  std::vector<Tensor> relu_masks;                    // hidden layer i's ReLU mask, where written
  for (std::size_t i = 0; i < count; ++i) {
    const Tensor weight = autocast_input(layers_[i].weight, CastPolicy::LowerPrecision);
    const Tensor bias = autocast_input(layers_[i].bias, CastPolicy::LowerPrecision);
    node_inputs.push_back(weight);
    node_inputs.push_back(bias);
    layers.push_back(check_layer(op, layer_inputs.back(), weight, bias, i, count));
    const bool hidden = i + 1 < count;
    const Shape out_shape{rows, layers.back().weight.shape()[0]};
    Tensor mask;
    if (hidden && masks && layers.back().weight.shape()[1] > 0 && out_shape[1] > 0) {
      mask = empty(Shape{rows, relu_mask_row_bytes(out_shape[1])}, DType::UInt8, input.device());
    }
    layer_inputs.push_back(layer_forward(layer_inputs.back(), layers.back(), hidden || relu_after_last, mask));
    if (hidden) relu_masks.push_back(mask);
  }
  Tensor out = layer_inputs.back();
  layer_inputs.pop_back();
  const char* node = count > 1 ? "MlpBackward" : relu_after_last ? "LinearReluBackward" : "LinearBackward";
  autograd::record(
      node, out, node_inputs,
      [layers = std::move(layers), layer_inputs = std::move(layer_inputs), relu_masks = std::move(relu_masks),
       y = relu_after_last ? out.detach() : Tensor()](const Tensor& grad_output, const std::vector<bool>& need) {
        const Tensor& x = layer_inputs[0];
        Tensor g = y.defined() ? detail::relu_grad(grad_output, y) : detail::as_dtype_of(grad_output, x);
        std::vector<Tensor> grads(need.size());
        // The weight's and the bias's gradients straight into their arena slots where
        // they have them.
        const auto slot_for = [&](std::size_t input, const Shape& shape) {
          Tensor slot = autograd::gradient_destination(input);
          const bool fits =
              slot.defined() && slot.shape() == shape && slot.dtype() == g.dtype() && slot.is_contiguous();
          return fits ? slot : empty(shape, g.dtype(), g.device());
        };
        bool needed_below = need[0];  // a gradient into layer i's input is needed
        std::vector<bool> input_gradient_needed(layers.size());
        for (std::size_t i = 0; i < layers.size(); ++i) {
          input_gradient_needed[i] = needed_below;
          needed_below = needed_below || need[1 + 2 * i] || need[2 + 2 * i];
        }
        for (std::size_t i = layers.size(); i-- > 0;) {
          const Tensor& w = layers[i].weight;
          const Tensor& in = layer_inputs[i];
          const std::size_t wi = 1 + 2 * i, bi = 2 + 2 * i;
          Tensor& gw = grads[wi];
          Tensor& gb = grads[bi];
          // The weight's gradient, and the bias's (g's column sums) from its GEMM
          // unless the layer above wrote it already.
          if (need[wi] && in.shape()[0] > 0) {
            gw = slot_for(wi, w.shape());
            Tensor sums;
            if (need[bi] && !gb.defined() && g.is_contiguous()) gb = sums = slot_for(bi, Shape{w.shape()[0]});
            gemm_into(g.t(), in, gw, {.a_row_sums = sums});
          } else if (need[wi]) {
            gw = mm(g.t(), in);
          }
          if (need[bi] && !gb.defined()) gb = sum(g, {0});
          if (!input_gradient_needed[i]) break;
          if (i == 0) {
            grads[0] = mm(g, w);
            break;
          }
          // The gradient through the ReLU below: in the GEMM where its mask is kept.
          const Tensor& mask = relu_masks[i - 1];
          if (!mask.defined()) {
            g = detail::relu_grad(mm(g, w), in);
            continue;
          }
          Tensor below = empty(in.shape(), g.dtype(), g.device());
          const std::size_t below_bias = 2 + 2 * (i - 1);
          Tensor bias_gradient;
          if (need[below_bias]) grads[below_bias] = bias_gradient = slot_for(below_bias, Shape{in.shape()[1]});
          gemm_into(g, w, below, {.relu_mask = mask, .bias_gradient = bias_gradient});
          g = below;
        }
        return grads;
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
  const LinearLayer layer{weight, bias};
  return mlp_impl("linear", input, {&layer, 1}, false);
}

Tensor linear_relu(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  const LinearLayer layer{weight, bias};
  return mlp_impl("linear_relu", input, {&layer, 1}, true);
}

Tensor mlp(const Tensor& input, std::span<const LinearLayer> layers, bool relu_after_last) {
  const char* op = layers.size() != 1 ? "mlp" : relu_after_last ? "linear_relu" : "linear";
  return mlp_impl(op, input, layers, relu_after_last);
}

}  // namespace accel
