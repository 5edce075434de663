// GradScaler: loss scaling for mixed-precision training, with PyTorch's semantics
// (torch.amp.GradScaler): float16 gradients underflow to zero below 6e-8, so the loss is
// multiplied by a large scale before backward, the gradients are divided by it before the
// optimizer reads them, and a step whose gradients hold inf/NaN is skipped and the scale halved.
//
//   amp::GradScaler scaler(device);
//   scaler.scale(loss).backward();
//   scaler.step(optimizer);   // unscales, checks for inf/NaN on the device, steps or skips
//   scaler.update();          // halves the scale after a skip, doubles it after 2000 clean steps
//
// With gradient accumulation: backward on each scaled micro-batch loss, then step + update once.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "accel/optim/optimizer.h"
#include "accel/tensor/tensor.h"

namespace accel::amp {

// What GradScaler::step did: the optimizer stepped, or skipped an inf/NaN step, as decided on
// the host; or the optimizer skips on the device if it must (a packed Adam), and the host does
// not know which without reading the flag (PyTorch's step returns None there too).
enum class ScaledStep { Taken, Skipped, DecidedOnDevice };

struct GradScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  std::int32_t growth_interval = 2000;
  bool enabled = true;  // disabled: scale() returns the loss, step() just steps
};

class GradScaler {
 public:
  explicit GradScaler(Device device = kCPU, GradScalerOptions options = {});

  // loss * scale (the scale lives on the device; differentiable in the loss).
  Tensor scale(const Tensor& loss);
  // Divides the optimizer's gradients by the scale, in place, and records on the device whether
  // any was inf/NaN. At most once per optimizer between update()s (to clip gradients first).
  void unscale_(optim::Optimizer& optimizer);
  // Unscales if unscale_ was not called, then steps unless a gradient was inf/NaN: on the device
  // when the optimizer can skip there (Optimizer::step_unless: no host read, so the step can be
  // captured), else by reading the flag on the host (the one synchronisation).
  ScaledStep step(optim::Optimizer& optimizer);
  // Adjusts the scale from this iteration's inf checks (every optimizer's), on the device.
  void update();
  // Sets the scale to `new_scale` instead (no growth/backoff), as update(new_scale).
  void update(double new_scale);

  double get_scale() const;  // a synchronising read
  std::int32_t growth_tracker() const;
  bool is_enabled() const { return options_.enabled; }
  const GradScalerOptions& options() const { return options_; }

  // PyTorch's names: "scale", "growth_factor", "backoff_factor", "growth_interval" as float64
  // scalars, "_growth_tracker" as int64. load_state_dict checks all before it changes any.
  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& state);

 private:
  enum class Stage { Ready, Unscaled, Stepped };
  struct PerOptimizer {
    Stage stage = Stage::Ready;
    Tensor found_inf;  // float32 scalar on the device: 1 when a gradient was inf/NaN
  };

  Device device_;
  GradScalerOptions options_;
  Tensor scale_;           // float32 scalar on the device
  Tensor growth_tracker_;  // int32 scalar on the device
  std::map<const optim::Optimizer*, PerOptimizer> per_optimizer_;
};

}  // namespace accel::amp
