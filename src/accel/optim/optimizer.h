// Optimizers with PyTorch's update rules and defaults. Each step is one fused backend call
// over every parameter that has a gradient.
//
//   optim::Adam optimizer(model.parameters(), {.lr = 1e-3});
//   optimizer.zero_grad(); loss.backward(); optimizer.step();
#pragma once

#include <cstdint>
#include <vector>

#include "accel/tensor/tensor.h"

namespace accel::optim {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // set_to_none = true (PyTorch 2's default) drops the gradients; false zeroes them in place.
  void zero_grad(bool set_to_none = true);
  const std::vector<Tensor>& params() const { return params_; }

 protected:
  std::vector<Tensor> params_;
};

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options);
  void step() override;
  const SGDOptions& options() const { return options_; }

 private:
  SGDOptions options_;
  std::vector<Tensor> momentum_buffers_;
  std::vector<bool> has_buffer_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// Adam; with decoupled weight decay it is AdamW.
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions options = {});
  void step() override;
  const AdamOptions& options() const { return options_; }
  // Steps taken by parameter i (PyTorch keeps this per parameter).
  std::int64_t step_count(std::size_t i) const { return steps_.at(i); }
  // Adam's first and second moments of parameter i (undefined before its first step).
  const Tensor& exp_avg(std::size_t i) const { return exp_avg_.at(i); }
  const Tensor& exp_avg_sq(std::size_t i) const { return exp_avg_sq_.at(i); }

 protected:
  Adam(std::vector<Tensor> params, AdamOptions options, bool decoupled);

 private:
  AdamOptions options_;
  bool decoupled_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  std::vector<std::int64_t> steps_;
};

// AdamW: PyTorch's default weight_decay is 1e-2.
struct AdamWOptions : AdamOptions {
  AdamWOptions() { weight_decay = 1e-2; }
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions options = {});
};

}  // namespace accel::optim
