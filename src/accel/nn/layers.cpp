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
  for (std::size_t i = 0; i < layers.size(); ++i) {
    // Linear then ReLU runs as one GEMM with a ReLU epilogue (same result, one pass less).
    auto* as_linear = dynamic_cast<Linear*>(layers[i].second.get());
    if (as_linear && i + 1 < layers.size() && dynamic_cast<ReLU*>(layers[i + 1].second.get())) {
      x = linear_relu(x, as_linear->weight, as_linear->bias);
      ++i;
      continue;
    }
    x = layers[i].second->forward(x);
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
