#include "accel/optim/schedulers.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "accel/core/error.h"

namespace accel::optim {

StepLR::StepLR(StepLROptions options) : options_(options) {
  if (options.step_size < 1)
    throw ValueError("StepLR: step_size must be >= 1, got " + std::to_string(options.step_size));
  if (!(options.gamma > 0.0)) throw ValueError("StepLR: gamma must be positive, got " + std::to_string(options.gamma));
}

double StepLR::lr_at(int epoch) const {
  return options_.base_lr * std::pow(options_.gamma, std::max(epoch, 0) / options_.step_size);
}

CosineAnnealingLR::CosineAnnealingLR(CosineAnnealingOptions options) : options_(options) {
  if (options.t_max < 1) {
    throw ValueError("CosineAnnealingLR: t_max must be >= 1, got " + std::to_string(options.t_max));
  }
}

double CosineAnnealingLR::lr_at(int epoch) const {
  const int e = std::clamp(epoch, 0, options_.t_max);
  return options_.eta_min +
         (options_.base_lr - options_.eta_min) * (1.0 + std::cos(std::numbers::pi * e / options_.t_max)) / 2.0;
}

}  // namespace accel::optim
