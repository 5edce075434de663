#include "accel/amp/grad_scaler.h"

#include <cmath>
#include <vector>

#include "accel/autograd/grad_mode.h"
#include "accel/backends/backend.h"
#include "accel/backends/kernel_recording.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

namespace accel::amp {
namespace {

void check_options(const GradScalerOptions& o) {
  if (!(o.init_scale > 0.0) || !std::isfinite(o.init_scale)) {
    throw ValueError("GradScaler: init_scale must be a positive finite number, got " + std::to_string(o.init_scale));
  }
  if (!(o.growth_factor > 1.0)) {
    throw ValueError("GradScaler: growth_factor must be > 1, got " + std::to_string(o.growth_factor));
  }
  if (!(o.backoff_factor > 0.0 && o.backoff_factor < 1.0)) {
    throw ValueError("GradScaler: backoff_factor must be in (0, 1), got " + std::to_string(o.backoff_factor));
  }
  if (o.growth_interval <= 0) {
    throw ValueError("GradScaler: growth_interval must be > 0, got " + std::to_string(o.growth_interval));
  }
}

}  // namespace

GradScaler::GradScaler(Device device, GradScalerOptions options) : device_(device), options_(options) {
  check_options(options_);
  if (!options_.enabled) return;
  scale_ = full({}, options_.init_scale, DType::Float32, device_);
  growth_tracker_ = zeros({}, DType::Int32, device_);
}

Tensor GradScaler::scale(const Tensor& loss) {
  if (!options_.enabled) return loss;
  if (!is_floating_point(loss.dtype())) {
    throw DTypeError("GradScaler.scale: the loss must be floating point, got " + std::string(dtype_name(loss.dtype())));
  }
  if (loss.device() != device_) {
    throw DeviceError("GradScaler.scale: the loss is on " + loss.device().to_string() + " but the scaler on " +
                      device_.to_string() + "; construct it with GradScaler(" + loss.device().to_string() + ")");
  }
  return mul(loss, scale_);
}

void GradScaler::unscale_(optim::Optimizer& optimizer) {
  if (!options_.enabled) return;
  PerOptimizer& state = per_optimizer_[&optimizer];
  if (state.stage == Stage::Unscaled) {
    throw ValueError("GradScaler.unscale_: already called on this optimizer since the last update()");
  }
  if (state.stage == Stage::Stepped) throw ValueError("GradScaler.unscale_: called after step(); call update() first");
  autograd::NoGradGuard no_grad;
  state.found_inf = zeros({}, DType::Float32, device_);
  std::vector<GradSpan> grads;
  for (std::size_t i = 0; i < optimizer.params().size(); ++i) {
    const Tensor g = optimizer.params()[i].grad();
    if (!g.defined()) continue;
    if (g.dtype() != DType::Float32 || !g.is_contiguous() || g.device() != device_) {
      throw DTypeError("GradScaler.unscale_: parameter " + std::to_string(i) + "'s gradient is " +
                       std::string(dtype_name(g.dtype())) + " on " + g.device().to_string() +
                       "; the scaler unscales contiguous float32 gradients on " + device_.to_string() +
                       " (keep master parameters in float32, as autocast does)");
    }
    grads.push_back({g.data_ptr<float>(), g.numel()});
    retain_for_replay(g.impl().storage);
  }
  for (const Tensor* t : {&scale_, &state.found_inf}) retain_for_replay(t->impl().storage);  // raw pointers below
  backend_for(device_).unscale_and_check_finite(grads, scale_.data_ptr<float>(), state.found_inf.data_ptr<float>(),
                                                stream_of(scale_));
  state.stage = Stage::Unscaled;
}

ScaledStep GradScaler::step(optim::Optimizer& optimizer) {
  if (!options_.enabled) {
    optimizer.step();
    return ScaledStep::Taken;
  }
  PerOptimizer& state = per_optimizer_[&optimizer];
  if (state.stage == Stage::Stepped) throw ValueError("GradScaler.step: already called since the last update()");
  if (state.stage == Stage::Ready) unscale_(optimizer);
  PerOptimizer& unscaled = per_optimizer_[&optimizer];
  unscaled.stage = Stage::Stepped;
  if (optimizer.step_unless(unscaled.found_inf)) return ScaledStep::DecidedOnDevice;
  const bool finite = unscaled.found_inf.item_double() == 0.0;
  if (finite) optimizer.step();
  return finite ? ScaledStep::Taken : ScaledStep::Skipped;
}

void GradScaler::update() {
  if (!options_.enabled) return;
  Tensor found_inf;
  for (auto& [optimizer, state] : per_optimizer_) {
    if (!state.found_inf.defined()) continue;
    found_inf = found_inf.defined() ? add(found_inf, state.found_inf) : state.found_inf;
  }
  if (!found_inf.defined()) {
    throw ValueError("GradScaler.update: no inf checks were recorded (call step() or unscale_() first)");
  }
  for (const Tensor* t : {&scale_, &growth_tracker_, &found_inf}) retain_for_replay(t->impl().storage);
  backend_for(device_).update_scale(scale_.data_ptr<float>(), growth_tracker_.data_ptr<std::int32_t>(),
                                    found_inf.data_ptr<float>(), options_.growth_factor, options_.backoff_factor,
                                    options_.growth_interval, stream_of(scale_));
  per_optimizer_.clear();
}

void GradScaler::update(double new_scale) {
  if (!options_.enabled) return;
  if (!(new_scale > 0.0) || !std::isfinite(new_scale)) {
    throw ValueError("GradScaler.update: new_scale must be a positive finite number, got " + std::to_string(new_scale));
  }
  autograd::NoGradGuard no_grad;
  copy_(scale_, full({}, new_scale, DType::Float32, device_));
  per_optimizer_.clear();
}

double GradScaler::get_scale() const { return options_.enabled ? scale_.item_double() : 1.0; }

std::int32_t GradScaler::growth_tracker() const {
  return options_.enabled ? static_cast<std::int32_t>(growth_tracker_.item_double()) : 0;
}

std::map<std::string, Tensor> GradScaler::state_dict() const {
  if (!options_.enabled) return {};
  return {{"scale", scalar_tensor(get_scale(), DType::Float64)},
          {"growth_factor", scalar_tensor(options_.growth_factor, DType::Float64)},
          {"backoff_factor", scalar_tensor(options_.backoff_factor, DType::Float64)},
          {"growth_interval", scalar_tensor(options_.growth_interval, DType::Float64)},
          {"_growth_tracker", scalar_tensor(growth_tracker(), DType::Int64)}};
}

void GradScaler::load_state_dict(const std::map<std::string, Tensor>& state) {
  if (!options_.enabled) throw ValueError("GradScaler.load_state_dict: the scaler is disabled");
  for (const char* key : {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}) {
    auto it = state.find(key);
    if (it == state.end() || !it->second.defined() || it->second.numel() != 1) {
      throw ValueError(std::string("GradScaler.load_state_dict: '") + key + "' is missing or not one value");
    }
  }
  if (state.size() != 5) throw ValueError("GradScaler.load_state_dict: unexpected keys (expected exactly 5)");
  GradScalerOptions options = options_;
  options.init_scale = state.at("scale").item_double();
  options.growth_factor = state.at("growth_factor").item_double();
  options.backoff_factor = state.at("backoff_factor").item_double();
  const double interval = state.at("growth_interval").item_double();
  const double tracker = state.at("_growth_tracker").item_double();
  if (interval != std::floor(interval) || interval < 1 || interval > 2147483647.0) {
    throw ValueError("GradScaler.load_state_dict: growth_interval must be a positive int32");
  }
  options.growth_interval = static_cast<std::int32_t>(interval);
  if (tracker != std::floor(tracker) || tracker < 0 || tracker >= interval) {
    throw ValueError("GradScaler.load_state_dict: _growth_tracker must be in [0, growth_interval)");
  }
  check_options(options);
  autograd::NoGradGuard no_grad;
  options_.growth_factor = options.growth_factor;
  options_.backoff_factor = options.backoff_factor;
  options_.growth_interval = options.growth_interval;
  copy_(scale_, full({}, options.init_scale, DType::Float32, device_));
  copy_(growth_tracker_, full({}, tracker, DType::Int32, device_));
  per_optimizer_.clear();
}

}  // namespace accel::amp
