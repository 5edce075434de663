#include "accel/train/xla_program.h"

#include <cmath>

#include "accel/backends/xla/stablehlo_builder.h"
#include "accel/nn/layers.h"

namespace accel::train {

using xla::Compare;
using xla::StableHloBuilder;
using xla::TensorType;
using xla::Value;

std::size_t XlaMlp::parameter_count() const {
  std::size_t n = 0;
  for (const auto& layer : layers) n += layer.bias ? 2 : 1;
  return n;
}

XlaMlp describe_for_xla(const nn::Module& module) {
  const auto* sequential = dynamic_cast<const nn::Sequential*>(&module);
  const std::string supported =
      "XLA programs cover nn::Sequential models of Linear layers with ReLU between them (a leading Flatten and "
      "Dropout(0) allowed)";
  if (sequential == nullptr) throw ValueError(supported + "; this model is " + module.to_string());
  XlaMlp mlp;
  std::size_t position = 0;
  for (const auto& [name, child] : sequential->children()) {
    const nn::Module* layer = child.get();
    const auto unsupported = [&](const std::string& why) {
      return ValueError(supported + "; layer " + name + " (" + layer->to_string() + ") " + why);
    };
    if (const auto* linear = dynamic_cast<const nn::Linear*>(layer)) {
      const auto& shape = linear->weight.shape();
      if (!mlp.layers.empty() && mlp.layers.back().out != shape[1]) {
        throw unsupported("takes " + std::to_string(shape[1]) + " features, the layer before gives " +
                          std::to_string(mlp.layers.back().out));
      }
      mlp.layers.push_back({.in = shape[1], .out = shape[0], .bias = linear->bias.defined(), .relu_after = false});
    } else if (dynamic_cast<const nn::ReLU*>(layer)) {
      if (mlp.layers.empty() || mlp.layers.back().relu_after) throw unsupported("must follow a Linear layer");
      mlp.layers.back().relu_after = true;
    } else if (dynamic_cast<const nn::Flatten*>(layer) && position == 0) {
      mlp.flatten_input = true;
    } else if (const auto* dropout = dynamic_cast<const nn::Dropout*>(layer); dropout && dropout->p() == 0.0) {
      // The identity.
    } else {
      throw unsupported("is not supported yet");
    }
    ++position;
  }
  if (mlp.layers.empty()) throw ValueError(supported + "; this one has no Linear layer");
  if (mlp.layers.back().relu_after) {
    throw ValueError(supported + "; it must end in a Linear layer (logits: the loss applies the softmax)");
  }
  return mlp;
}

XlaOptimizer describe_for_xla(const optim::Optimizer& optimizer) {
  XlaOptimizer spec;
  if (const auto* adam = dynamic_cast<const optim::Adam*>(&optimizer)) {
    const auto& o = adam->options();
    spec.kind = XlaOptimizer::Kind::Adam;
    spec.beta1 = static_cast<float>(o.beta1);
    spec.beta2 = static_cast<float>(o.beta2);
    spec.eps = static_cast<float>(o.eps);
    spec.weight_decay = static_cast<float>(o.weight_decay);
    spec.decoupled = dynamic_cast<const optim::AdamW*>(&optimizer) != nullptr;
    return spec;
  }
  if (const auto* sgd = dynamic_cast<const optim::SGD*>(&optimizer)) {
    const auto& o = sgd->options();
    if (o.dampening != 0.0 || o.nesterov) {
      throw ValueError("XLA programs run SGD without dampening or Nesterov momentum");
    }
    spec.kind = XlaOptimizer::Kind::SGD;
    spec.momentum = static_cast<float>(o.momentum);
    spec.weight_decay = static_cast<float>(o.weight_decay);
    return spec;
  }
  throw ValueError("XLA programs run Adam, AdamW and SGD; not " + optimizer.name());
}

std::vector<float> xla_hyper(const XlaOptimizer& optimizer, double lr, std::int64_t step, std::int64_t samples) {
  const auto inv_count = static_cast<float>(1.0 / static_cast<double>(samples));
  if (optimizer.kind == XlaOptimizer::Kind::SGD) return {static_cast<float>(lr), 0.0f, inv_count, 0.0f};
  // As the CPU kernel (backends/cpu/cpu_optim.cpp): in double, rounded once.
  const double t = static_cast<double>(step);
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(optimizer.beta1), t);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(optimizer.beta2), t);
  return {static_cast<float>(lr / bias_correction1), static_cast<float>(1.0 / std::sqrt(bias_correction2)), inv_count,
          static_cast<float>(1.0 - lr * static_cast<double>(optimizer.weight_decay))};
}

namespace {

Value broadcast_rows(StableHloBuilder& b, const Value& per_row, const TensorType& type) {
  return b.broadcast(per_row, type, {0});
}

// What the forward pass keeps for the backward pass.
struct Forward {
  std::vector<Value> inputs;   // each layer's input (inputs[0] = x)
  std::vector<Value> outputs;  // each layer's pre-activation output; the last is the logits
};

Forward forward(StableHloBuilder& b, const XlaMlp& mlp, const std::vector<Value>& params, const Value& x) {
  Forward f;
  Value h = x;
  std::size_t p = 0;
  for (const auto& layer : mlp.layers) {
    f.inputs.push_back(h);
    Value z = b.dot(h, params[p++], 1, 1);  // x W^T
    if (layer.bias) z = b.add(z, b.broadcast(params[p++], z.type, {1}));
    f.outputs.push_back(z);
    h = layer.relu_after ? b.maximum(z, b.constant(0.0f, z.type)) : z;
  }
  return f;
}

// The batch's cross-entropy summed over real samples, the count it got right (argmax, first
// index on ties, as accel's argmax), and softmax(logits) - onehot(y) for the backward pass.
struct LossTerms {
  Value loss_sum, correct, softmax_minus_onehot;
};

LossTerms cross_entropy(StableHloBuilder& b, const Value& logits, const Value& y, const Value& mask) {
  const TensorType& type = logits.type;  // [b, C]
  const Value row_max = b.reduce_max(logits, {1});
  const Value shifted = b.subtract(logits, broadcast_rows(b, row_max, type));
  const Value exps = b.exp(shifted);
  const Value sums = b.reduce_sum(exps, {1});
  const Value log_probs = b.subtract(shifted, broadcast_rows(b, b.log(sums), type));
  const Value classes = b.iota(TensorType(type.dims, "i32"), 1);
  const Value is_target = b.compare(Compare::EQ, classes, b.broadcast(y, TensorType(type.dims, "i32"), {0}));
  const Value onehot = b.convert(is_target, "f32");
  const Value per_sample = b.reduce_sum(b.multiply(onehot, log_probs), {1});  // -cross-entropy
  const Value loss_sum = b.subtract(b.constant(0.0f), b.reduce_sum(b.multiply(per_sample, mask), {0}));

  const Value is_max = b.compare(Compare::EQ, logits, broadcast_rows(b, row_max, type));
  const Value class_index = b.convert(classes, "f32");
  const Value past_last = b.constant(static_cast<float>(type.dims[1]), type);
  const Value argmax = b.reduce_min(b.select(is_max, class_index, past_last), {1});
  const Value right = b.convert(b.compare(Compare::EQ, argmax, b.convert(y, "f32")), "f32");
  const Value correct = b.reduce_sum(b.multiply(right, mask), {0});

  const Value softmax = b.divide(exps, broadcast_rows(b, sums, type));
  return {loss_sum, correct, b.subtract(softmax, onehot)};
}

struct StepArguments {
  std::vector<Value> params, state;
  Value loss_total, correct_total, x, y, mask;
};

StepArguments declare_arguments(StableHloBuilder& b, const XlaMlp& mlp, std::int64_t batch, int state_rows,
                                bool donate_params) {
  StepArguments a;
  int output = 0;
  const auto donated = [&](bool donate) { return donate ? std::optional<int>(output++) : std::nullopt; };
  for (const auto& layer : mlp.layers) {
    a.params.push_back(b.argument(TensorType({layer.out, layer.in}), donated(donate_params)));
    if (layer.bias) a.params.push_back(b.argument(TensorType({layer.out}), donated(donate_params)));
  }
  for (int row = 0; row < state_rows; ++row) {
    for (const auto& p : a.params) a.state.push_back(b.argument(p.type, donated(true)));
  }
  a.loss_total = b.argument(TensorType::scalar(), donated(true));
  a.correct_total = b.argument(TensorType::scalar(), donated(true));
  a.x = b.argument(TensorType({batch, mlp.in_features()}));
  a.y = b.argument(TensorType({batch}, "i32"));
  a.mask = b.argument(TensorType({batch}));
  return a;
}

struct StepResult {
  std::vector<Value> params, state;
  Value loss_sum, correct;
};

// One training step on this replica's samples: forward, loss, backward, the all-reduce of the
// gradients over the replicas, the optimizer's update.
StepResult step_body(StableHloBuilder& b, const XlaMlp& mlp, const XlaOptimizer& opt, const std::vector<Value>& params,
                     const std::vector<Value>& state, const Value& x, const Value& y, const Value& mask,
                     const Value& hyper, int replicas) {
  const Forward f = forward(b, mlp, params, x);
  const LossTerms terms = cross_entropy(b, f.outputs.back(), y, mask);

  // d(mean loss)/d(logits): each real sample weighs 1 / (samples in the global batch).
  const Value weight = b.multiply(mask, b.scalar_broadcast(b.element(hyper, 2), mask.type));
  Value dz = b.multiply(terms.softmax_minus_onehot, broadcast_rows(b, weight, terms.softmax_minus_onehot.type));
  std::vector<Value> grads(params.size());
  std::size_t p = params.size();
  for (std::size_t i = mlp.layers.size(); i-- > 0;) {
    const XlaLinear& layer = mlp.layers[i];
    if (layer.bias) grads[--p] = b.reduce_sum(dz, {0});
    const std::size_t w = --p;
    grads[w] = b.dot(dz, f.inputs[i], 0, 0);  // dz^T x: [out, in]
    if (i == 0) break;
    Value dh = b.dot(dz, params[w], 1, 0);  // dz W: [b, in]
    if (mlp.layers[i - 1].relu_after) {
      const Value z = f.outputs[i - 1];
      dh = b.select(b.compare(Compare::GT, z, b.constant(0.0f, z.type)), dh, b.constant(0.0f, z.type));
    }
    dz = dh;
  }
  // Data parallelism: every replica adds up every replica's gradients (the global batch's
  // mean), then applies the same update to its own copy of the parameters.
  for (auto& g : grads) g = b.all_reduce_sum(g, replicas);
  const Value loss_sum = b.all_reduce_sum(terms.loss_sum, replicas);
  const Value correct = b.all_reduce_sum(terms.correct, replicas);

  std::vector<Value> outputs(params.size()), state_out;
  const Value rate = b.element(hyper, 0);
  if (opt.kind == XlaOptimizer::Kind::Adam) {
    const std::size_t n = params.size();
    std::vector<Value> m_out(n), v_out(n);
    const Value inv_bc2_sqrt = b.element(hyper, 1);
    const Value decay = b.element(hyper, 3);
    for (std::size_t i = 0; i < n; ++i) {
      const TensorType& t = params[i].type;
      const auto c = [&](float value) { return b.constant(value, t); };
      Value grad = grads[i];
      Value weight = params[i];
      if (opt.weight_decay != 0.0f && opt.decoupled) weight = b.multiply(weight, b.scalar_broadcast(decay, t));
      if (opt.weight_decay != 0.0f && !opt.decoupled) grad = b.add(grad, b.multiply(c(opt.weight_decay), weight));
      // PyTorch's (and accel's CPU kernel's) order of operations.
      const Value m = b.add(b.multiply(state[i], c(opt.beta1)), b.multiply(grad, c(1.0f - opt.beta1)));
      const Value v =
          b.add(b.multiply(state[n + i], c(opt.beta2)), b.multiply(b.multiply(c(1.0f - opt.beta2), grad), grad));
      const Value denom = b.add(b.multiply(b.sqrt(v), b.scalar_broadcast(inv_bc2_sqrt, t)), c(opt.eps));
      const Value step = b.multiply(b.subtract(c(0.0f), b.scalar_broadcast(rate, t)), b.divide(m, denom));
      outputs[i] = b.add(weight, step);
      m_out[i] = m;
      v_out[i] = v;
    }
    state_out = m_out;
    state_out.insert(state_out.end(), v_out.begin(), v_out.end());
  } else {
    for (std::size_t i = 0; i < params.size(); ++i) {
      const TensorType& t = params[i].type;
      Value grad = grads[i];
      if (opt.weight_decay != 0.0f) grad = b.add(grad, b.multiply(b.constant(opt.weight_decay, t), params[i]));
      if (opt.momentum != 0.0f) {
        grad = b.add(b.multiply(state[i], b.constant(opt.momentum, t)), grad);
        state_out.push_back(grad);
      }
      outputs[i] = b.subtract(params[i], b.multiply(b.scalar_broadcast(rate, t), grad));
    }
  }
  return {outputs, state_out, loss_sum, correct};
}

}  // namespace

std::string emit_train_step(const XlaMlp& mlp, const XlaOptimizer& opt, std::int64_t replica_batch, int replicas) {
  StableHloBuilder b;
  StepArguments a = declare_arguments(b, mlp, replica_batch, opt.state_rows(), true);
  const Value hyper = b.argument(TensorType({4}));
  const StepResult step = step_body(b, mlp, opt, a.params, a.state, a.x, a.y, a.mask, hyper, replicas);
  std::vector<Value> outputs = step.params;
  outputs.insert(outputs.end(), step.state.begin(), step.state.end());
  outputs.push_back(b.add(a.loss_total, step.loss_sum));
  outputs.push_back(b.add(a.correct_total, step.correct));
  outputs.push_back(step.loss_sum);  // this batch's own, for callbacks that want each batch's loss
  b.results(outputs);
  return b.module("accel_train_step");
}

std::string emit_train_epoch(const XlaMlp& mlp, const XlaOptimizer& opt, std::int64_t replica_batch, int replicas,
                             std::int64_t steps, std::int64_t samples) {
  StableHloBuilder b;
  std::vector<Value> params, state;
  int output = 0;
  for (const auto& layer : mlp.layers) {
    params.push_back(b.argument(TensorType({layer.out, layer.in}), output++));
    if (layer.bias) params.push_back(b.argument(TensorType({layer.out}), output++));
  }
  for (int row = 0; row < opt.state_rows(); ++row) {
    for (const auto& p : params) state.push_back(b.argument(p.type, output++));
  }
  const Value loss_total = b.argument(TensorType::scalar(), output++);
  const Value correct_total = b.argument(TensorType::scalar(), output++);
  const Value x_all = b.argument(TensorType({samples, mlp.in_features()}));
  const Value y_all = b.argument(TensorType({samples}, "i32"));
  const Value order = b.argument(TensorType({steps, replica_batch}, "i32"));
  const Value masks = b.argument(TensorType({steps, replica_batch}));
  const Value hypers = b.argument(TensorType({steps, 4}));

  std::vector<Value> carried = params;
  carried.insert(carried.end(), state.begin(), state.end());
  const std::size_t p = params.size(), s = state.size();
  for (const Value& v : {loss_total, correct_total, x_all, y_all, order, masks, hypers}) carried.push_back(v);
  const std::vector<Value> done = b.for_loop(steps, carried, [&](const Value& i, const std::vector<Value>& c) {
    const Value& xs = c[p + s + 2];
    const Value& ys = c[p + s + 3];
    const Value rows = b.dynamic_row(c[p + s + 4], i);
    const StepResult step = step_body(
        b, mlp, opt, std::vector<Value>(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(p)),
        std::vector<Value>(c.begin() + static_cast<std::ptrdiff_t>(p), c.begin() + static_cast<std::ptrdiff_t>(p + s)),
        b.gather_rows(xs, rows), b.gather_rows(ys, rows), b.dynamic_row(c[p + s + 5], i),
        b.dynamic_row(c[p + s + 6], i), replicas);
    std::vector<Value> next = step.params;
    next.insert(next.end(), step.state.begin(), step.state.end());
    next.push_back(b.add(c[p + s], step.loss_sum));
    next.push_back(b.add(c[p + s + 1], step.correct));
    next.insert(next.end(), c.begin() + static_cast<std::ptrdiff_t>(p + s + 2), c.end());
    return next;
  });
  b.results(std::vector<Value>(done.begin(), done.begin() + static_cast<std::ptrdiff_t>(p + s + 2)));
  return b.module("accel_train_epoch");
}

std::string emit_eval_step(const XlaMlp& mlp, std::int64_t batch) {
  StableHloBuilder b;
  StepArguments a = declare_arguments(b, mlp, batch, 0, false);
  const Forward f = forward(b, mlp, a.params, a.x);
  const LossTerms terms = cross_entropy(b, f.outputs.back(), a.y, a.mask);
  b.results({b.add(a.loss_total, terms.loss_sum), b.add(a.correct_total, terms.correct), f.outputs.back()});
  return b.module("accel_eval_step");
}

}  // namespace accel::train
