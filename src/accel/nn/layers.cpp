#include "accel/nn/layers.h"

#include <cmath>

#include "accel/ops/ops.h"

namespace accel::nn {

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool with_bias, Generator& gen)
    : in_features_(in_features), out_features_(out_features) {
  if (in_features <= 0 || out_features <= 0) {
    throw ValueError("Linear: in_features and out_features must be positive, got " + std::to_string(in_features) +
                     " and " + std::to_string(out_features));
  }
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight = register_parameter("weight", rand(Shape{out_features, in_features}, gen, -bound, bound));
  if (with_bias) bias = register_parameter("bias", rand(Shape{out_features}, gen, -bound, bound));
}

Tensor Linear::forward(const Tensor& input) { return linear(input, weight, bias); }

std::string Linear::to_string() const {
  return "Linear(in_features=" + std::to_string(in_features_) + ", out_features=" + std::to_string(out_features_) +
         ", bias=" + (bias.defined() ? "True" : "False") + ")";
}

Tensor ReLU::forward(const Tensor& input) { return relu(input); }

Tensor Flatten::forward(const Tensor& input) {
  if (input.dim() == 0) return input.reshape({1});
  if (input.dim() == 1) return input;
  return input.flatten(start_, end_);
}

std::string Flatten::to_string() const {
  return "Flatten(start_dim=" + std::to_string(start_) + ", end_dim=" + std::to_string(end_) + ")";
}

Dropout::Dropout(double p, Generator& gen) : p_(p), gen_(&gen) {
  if (p < 0.0 || p > 1.0) throw ValueError("Dropout: p must be in [0, 1], got " + std::to_string(p));
}

Tensor Dropout::forward(const Tensor& input) { return dropout(input, p_, is_training(), *gen_); }

std::string Dropout::to_string() const { return "Dropout(p=" + std::to_string(p_) + ")"; }

void Sequential::push_back(std::shared_ptr<Module> layer) {
  register_module(std::to_string(children().size()), std::move(layer));
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  const auto& layers = children();
  const auto linear_at = [&](std::size_t i) {
    return i < layers.size() ? dynamic_cast<Linear*>(layers[i].second.get()) : nullptr;
  };
  const auto relu_at = [&](std::size_t i) {
    return i < layers.size() && dynamic_cast<ReLU*>(layers[i].second.get()) != nullptr;
  };
  for (std::size_t i = 0; i < layers.size();) {
    // A run of Linear, ReLU, Linear, ... (ending in either) is one op: each ReLU in its GEMM's
    // epilogue, and on a GPU each ReLU's gradient in the next layer's backward GEMM (ops.h's
    // mlp). The same result as the layers one by one, in fewer passes (Linear and ReLU are
    // final, so no overridden forward is skipped).
    std::vector<LinearLayer> run;
    while (Linear* linear = linear_at(i)) {
      run.push_back({linear->weight, linear->bias});
      if (!relu_at(i + 1) || !linear_at(i + 2)) break;
      i += 2;
    }
    if (run.empty()) {
      x = layers[i++].second->forward(x);
      continue;
    }
    const bool relu_after_last = relu_at(i + 1);
    x = mlp(x, run, relu_after_last);
    i += relu_after_last ? 2 : 1;
  }
  return x;
}

std::string Sequential::to_string() const {
  std::string out = "Sequential(\n";
  for (const auto& [name, layer] : children()) out += "  (" + name + "): " + layer->to_string() + "\n";
  return out + ")";
}

Tensor CrossEntropyLoss::operator()(const Tensor& logits, const Tensor& targets) const {
  return cross_entropy(logits, targets);
}

Tensor MSELoss::operator()(const Tensor& input, const Tensor& target) const { return mse_loss(input, target); }

}  // namespace accel::nn
