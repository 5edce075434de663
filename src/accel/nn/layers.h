// The layers of the seed's model and their usual companions, as torch.nn spells them.
//
//   nn::Sequential model(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 10));
//   Tensor logits = model(x);
#pragma once

#include <memory>
#include <type_traits>

#include "accel/nn/module.h"
#include "accel/tensor/generator.h"

namespace accel::nn {

// y = x W^T + b, W [out, in]; initialised as PyTorch does: U(-1/sqrt(in), 1/sqrt(in)) for both
// W (kaiming_uniform with a = sqrt(5)) and b.
class Linear final : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& input) override;
  std::string to_string() const override;

  Tensor weight;
  Tensor bias;  // undefined when constructed with bias = false

 private:
  std::int64_t in_features_, out_features_;
};

class ReLU final : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  std::string to_string() const override { return "ReLU()"; }
};

// Flattens dims start_dim..end_dim (PyTorch's defaults 1..-1 keep the batch dim).
class Flatten : public Module {
 public:
  explicit Flatten(std::int64_t start_dim = 1, std::int64_t end_dim = -1) : start_(start_dim), end_(end_dim) {}
  Tensor forward(const Tensor& input) override;
  std::string to_string() const override;

 private:
  std::int64_t start_, end_;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator& gen = default_generator());
  Tensor forward(const Tensor& input) override;
  double p() const { return p_; }
  std::string to_string() const override;

 private:
  double p_;
  Generator* gen_;
};

class Sequential : public Module {
 public:
  Sequential() = default;
  // Takes layers by value: nn::Sequential(nn::Linear(784, 256), nn::ReLU(), ...).
  template <typename... Layers>
  explicit Sequential(Layers&&... layers) {
    (push_back(std::make_shared<std::decay_t<Layers>>(std::forward<Layers>(layers))), ...);
  }
  void push_back(std::shared_ptr<Module> layer);
  Tensor forward(const Tensor& input) override;
  std::string to_string() const override;
  std::size_t size() const { return children().size(); }
  Module& operator[](std::size_t index) const { return *children().at(index).second; }
};

// Callable loss objects, as torch.nn.CrossEntropyLoss and MSELoss (mean reduction).
class CrossEntropyLoss {
 public:
  Tensor operator()(const Tensor& logits, const Tensor& targets) const;
};

class MSELoss {
 public:
  Tensor operator()(const Tensor& input, const Tensor& target) const;
};

}  // namespace accel::nn
