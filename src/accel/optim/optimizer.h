// Optimizers with PyTorch's update rules and defaults. Each step is one fused backend call
// over every parameter that has a gradient; for a packed model (nn::Module::pack_parameters)
// it is one kernel over three flat buffers: values, gradients and the optimizer's own state,
// which is then laid out like the parameter arena (one allocation).
//
//   optim::Adam optimizer(model.parameters(), {.lr = 1e-3});
//   optimizer.zero_grad(); loss.backward(); optimizer.step();
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "accel/tensor/flat_arena.h"
#include "accel/tensor/tensor.h"

namespace accel::optim {

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> params, std::string name);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // Steps unless *found_inf (a float32 scalar on the parameters' device) is nonzero, decided on
  // the device with no host read (GradScaler's skip, capturable). Returns false when this
  // optimizer cannot (then nothing happened and the caller decides on the host).
  virtual bool step_unless(const Tensor& found_inf) {
    (void)found_inf;
    return false;
  }
  // set_to_none = true (PyTorch 2's default) drops the gradients; false zeroes them in place.
  void zero_grad(bool set_to_none = true);
  const std::vector<Tensor>& params() const { return params_; }
  // Fused backend calls the last step() made: 1 for a packed model whose parameters all had
  // gradients, else one per group of parameters the kernel could take together.
  std::size_t last_step_kernels() const { return last_step_kernels_; }

  // PyTorch's optimizer state_dict, flattened to names: "state.<i>.<buffer>" for each
  // parameter that has state ("step" as an int64 scalar), "param_groups.0.<option>" as float64
  // scalars. load_state_dict checks every name, shape and dtype before it changes anything.
  virtual std::map<std::string, Tensor> state_dict() const = 0;
  virtual void load_state_dict(const std::map<std::string, Tensor>& state) = 0;

  // The learning rate, as param_groups[0]["lr"]; set_lr is what schedulers call (a captured step
  // holds the old value: recapture it). Throws ValueError for a negative or non-finite rate.
  virtual double lr() const = 0;
  virtual void set_lr(double lr) = 0;
  const std::string& name() const { return name_; }

 protected:
  // The arena holding exactly these parameters with every gradient at its fixed place, or
  // null: then one fused call over the flat buffers covers the whole step.
  const FlatArena* flat_arena() const;
  // `rows` zeroed state buffers for every parameter: views of one [rows, arena] allocation when
  // the parameters are packed, else one allocation each. Returns views per row and parameter.
  std::vector<std::vector<Tensor>> make_state(std::size_t rows);
  // Row `row` of the flat state when it lines up with `arena`, else null.
  float* flat_state_row(const FlatArena* arena, std::int64_t row) const;

  std::vector<Tensor> params_;
  std::string name_;
  std::size_t last_step_kernels_ = 0;
  // The arena the state was laid out for (make_state), and that state as one allocation.
  std::shared_ptr<const FlatArena> state_arena_;
  Tensor flat_state_;
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
  double lr() const override { return options_.lr; }
  void set_lr(double lr) override;
  std::map<std::string, Tensor> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state) override;

 private:
  SGDOptions options_;
  std::vector<Tensor> momentum_buffers_;  // empty until the first momentum step
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
  // A packed model's Adam (the flat path) skips on the device; otherwise false.
  bool step_unless(const Tensor& found_inf) override;
  const AdamOptions& options() const { return options_; }
  double lr() const override { return options_.lr; }
  void set_lr(double lr) override;
  std::map<std::string, Tensor> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state) override;
  // Steps taken by parameter i (PyTorch keeps this per parameter). For a packed model the count
  // lives on the device (one for all parameters), and this reads it.
  std::int64_t step_count(std::size_t i) const;
  // Adam's first and second moments of parameter i (undefined before the first step).
  Tensor exp_avg(std::size_t i) const { return exp_avg_.empty() ? Tensor() : exp_avg_.at(i); }
  Tensor exp_avg_sq(std::size_t i) const { return exp_avg_sq_.empty() ? Tensor() : exp_avg_sq_.at(i); }

 protected:
  Adam(std::vector<Tensor> params, AdamOptions options, bool decoupled);

 private:
  void ensure_state();
  // One kernel over the arena when the parameters are packed and their gradients in place;
  // false (nothing done) otherwise.
  bool flat_step(const Tensor& found_inf);
  // Brings the per-parameter host counts up to date from the device count, which stops being
  // the authority (before a step that cannot take the flat path, or a load).
  void take_steps_to_host();

  AdamOptions options_;
  bool decoupled_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;  // empty until the first step
  std::vector<std::int64_t> steps_;
  Tensor device_step_;  // int64 on the device: every parameter's count while the flat path runs
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
