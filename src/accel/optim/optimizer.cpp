#include "accel/optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <string>

#include "accel/autograd/grad_mode.h"
#include "accel/backends/backend.h"
#include "accel/backends/kernel_recording.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

namespace accel::optim {
namespace {

void check_range(const std::string& optimizer, const char* name, double value, double low, bool low_open, double high) {
  const bool ok = (low_open ? value > low : value >= low) && value < high;
  if (!ok) {
    throw ValueError(optimizer + ": " + name + " = " + std::to_string(value) + " is invalid (valid: " +
                     (low_open ? "(" : "[") + std::to_string(low) + ", " + std::to_string(high) + "))");
  }
}

// The gradient's buffers as the fused kernel reads them: contiguous float32 on the parameter's device.
Tensor checked_grad(const Tensor& p, std::size_t index, const std::string& optimizer) {
  Tensor g = p.grad();
  if (g.shape() != p.shape() || g.dtype() != DType::Float32 || g.device() != p.device()) {
    throw ValueError(optimizer + ": parameter " + std::to_string(index) + " has a gradient " + g.shape().to_string() +
                     " " + std::string(dtype_name(g.dtype())) + " on " + g.device().to_string() +
                     " that does not match the parameter " + p.shape().to_string());
  }
  return g.contiguous();
}

void check_one_device(const std::string& optimizer, std::optional<Device>& device, const Tensor& p, std::size_t index) {
  if (!device) device = p.device();
  if (p.device() != *device) {
    throw DeviceError(optimizer + ": parameter " + std::to_string(index) + " is on " + p.device().to_string() +
                      " but earlier ones are on " + device->to_string() +
                      "; move the whole model with model.to(device)");
  }
}

Tensor float64_scalar(double value) { return scalar_tensor(value, DType::Float64); }

// Reads a state dict written by state_dict(): every name must be one `expected_buffers` or
// `options` allows, every buffer shaped as its parameter. Nothing is changed on error.
struct ParsedState {
  std::map<std::size_t, std::map<std::string, Tensor>> per_param;  // index -> buffer name -> tensor
  std::map<std::string, double> options;
};

ParsedState parse_state(const std::string& optimizer, const std::map<std::string, Tensor>& state,
                        const std::vector<Tensor>& params, const std::set<std::string>& buffers,
                        const std::set<std::string>& options) {
  const std::string where = optimizer + ".load_state_dict: ";
  ParsedState out;
  for (const auto& [name, tensor] : state) {
    if (!tensor.defined()) throw ValueError(where + "'" + name + "' holds no tensor");
    if (name.starts_with("param_groups.0.")) {
      const std::string option = name.substr(15);
      if (!options.contains(option)) throw ValueError(where + "unknown option '" + name + "'");
      if (tensor.numel() != 1 || !is_floating_point(tensor.dtype())) {
        throw DTypeError(where + "'" + name + "' must be one floating-point value, got " +
                         std::string(dtype_name(tensor.dtype())) + " " + tensor.shape().to_string());
      }
      out.options[option] = tensor.item_double();
      continue;
    }
    const auto dot = name.find('.', 6);
    const std::string index_text =
        name.starts_with("state.") && dot != std::string::npos ? name.substr(6, dot - 6) : "";
    if (index_text.empty() || index_text.size() > 9 ||
        !std::all_of(index_text.begin(), index_text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      throw ValueError(where + "unexpected key '" + name +
                       "' (expected state.<i>.<buffer> or param_groups.0.<option>)");
    }
    const auto index = static_cast<std::size_t>(std::stoul(index_text));
    const std::string buffer = name.substr(dot + 1);
    if (index >= params.size()) {
      throw ValueError(where + "'" + name + "' is for parameter " + index_text + " but the optimizer has " +
                       std::to_string(params.size()) + " parameters");
    }
    if (!buffers.contains(buffer)) throw ValueError(where + "unknown buffer '" + name + "'");
    if (buffer == "step") {
      // PyTorch keeps it as a float32 tensor, accel as int64: any whole number >= 1 will do.
      const double step = tensor.numel() == 1 && tensor.dtype() != DType::Bool ? tensor.item_double() : 0.0;
      if (step < 1 || step != std::floor(step) || step > 9.0e15) {
        throw ValueError(where + "'" + name + "' must be one whole number >= 1");
      }
    } else if (tensor.shape() != params[index].shape()) {
      throw ShapeError(where + "'" + name + "' has shape " + tensor.shape().to_string() + " but parameter " +
                       index_text + " is " + params[index].shape().to_string());
    }
    out.per_param[index][buffer] = tensor;
  }
  for (const auto& [index, found] : out.per_param) {
    for (const std::string& buffer : buffers) {
      if (!found.contains(buffer)) {
        throw ValueError(where + "parameter " + std::to_string(index) + " has state but no 'state." +
                         std::to_string(index) + "." + buffer + "'");
      }
    }
  }
  return out;
}

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params, std::string name)
    : params_(std::move(params)), name_(std::move(name)) {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    if (!p.defined() || !p.is_leaf() || !p.requires_grad()) {
      throw ValueError(name_ + ": parameter " + std::to_string(i) +
                       " is not a leaf tensor that requires grad (pass model.parameters())");
    }
    if (p.dtype() != DType::Float32 || !p.is_contiguous()) {
      throw DTypeError(name_ + ": parameter " + std::to_string(i) + " must be contiguous float32, got " +
                       std::string(dtype_name(p.dtype())));
    }
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  autograd::NoGradGuard no_grad;
  for (Tensor& p : params_) {
    if (set_to_none) {
      p.set_grad(Tensor());
    } else if (p.grad().defined()) {
      Tensor g = p.grad();
      zero_(g);
    }
  }
}

const FlatArena* Optimizer::flat_arena() const {
  const FlatArena* arena = arena_holding(params_);
  if (!arena) return nullptr;
  for (const Tensor& p : params_) {
    if (!grad_at_home(p)) return nullptr;
  }
  return arena;
}

std::vector<std::vector<Tensor>> Optimizer::make_state(std::size_t rows) {
  std::vector<std::vector<Tensor>> out(rows);
  if (arena_holding(params_)) {
    state_arena_ = params_[0].impl().arena;
    const std::int64_t n = state_arena_->values.numel();
    flat_state_ = zeros(Shape{static_cast<std::int64_t>(rows), n}, DType::Float32, params_[0].device());
    for (std::size_t r = 0; r < rows; ++r) {
      const Tensor row = flat_state_.select(0, static_cast<std::int64_t>(r));
      for (const Tensor& p : params_) {
        out[r].push_back(row.slice(0, p.offset(), p.offset() + p.numel()).view(p.shape().sizes()));
      }
    }
    return out;
  }
  for (std::size_t r = 0; r < rows; ++r) {
    for (const Tensor& p : params_) out[r].push_back(zeros(p.shape(), DType::Float32, p.device()));
  }
  return out;
}

float* Optimizer::flat_state_row(const FlatArena* arena, std::int64_t row) const {
  if (!arena || state_arena_.get() != arena) return nullptr;
  return flat_state_.select(0, row).data_ptr<float>();
}

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : Optimizer(std::move(params), "SGD"), options_(options), has_buffer_(params_.size(), false) {
  check_range(name_, "lr", options.lr, 0.0, false, 1e30);
  check_range(name_, "momentum", options.momentum, 0.0, false, 1e30);
  check_range(name_, "weight_decay", options.weight_decay, 0.0, false, 1e30);
  if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
    throw ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0");
  }
}

void SGD::set_lr(double lr) {
  check_range(name_, "lr", lr, 0.0, false, 1e30);
  options_.lr = lr;
}

void SGD::step() {
  autograd::NoGradGuard no_grad;
  const bool momentum = options_.momentum != 0.0;
  if (momentum && momentum_buffers_.empty()) momentum_buffers_ = make_state(1)[0];
  SgdHyper hyper{static_cast<float>(options_.lr),
                 static_cast<float>(options_.momentum),
                 static_cast<float>(options_.dampening),
                 static_cast<float>(options_.weight_decay),
                 options_.nesterov,
                 true};
  const FlatArena* arena = flat_arena();
  float* flat_buffer = momentum ? flat_state_row(arena, 0) : nullptr;
  const bool in_step = std::all_of(has_buffer_.begin(), has_buffer_.end(), [&](bool b) { return b == has_buffer_[0]; });
  if (arena && (!momentum || (flat_buffer && in_step))) {
    hyper.first_step = !has_buffer_[0];
    const ParamBuffers flat{arena->values.data_ptr<float>(), arena->grads.data_ptr<float>(), flat_buffer, nullptr,
                            arena->values.numel()};
    backend_for(arena->values.device()).sgd_step({&flat, 1}, hyper, stream_of(arena->values));
    last_step_kernels_ = 1;
    if (momentum) std::fill(has_buffer_.begin(), has_buffer_.end(), true);
    return;
  }
  // A momentum buffer starts as a copy of the gradient, so parameters on their first momentum
  // step go in a fused call of their own.
  std::vector<ParamBuffers> starting, continuing;
  std::vector<Tensor> grads;  // keeps contiguous gradient copies alive during the kernels
  std::optional<Device> device;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    check_one_device(name_, device, p, i);
    grads.push_back(checked_grad(p, i, name_));
    const bool first = momentum && !has_buffer_[i];
    if (momentum) has_buffer_[i] = true;
    (first ? starting : continuing)
        .push_back({p.data_ptr<float>(), grads.back().data_ptr<float>(),
                    momentum ? momentum_buffers_[i].data_ptr<float>() : nullptr, nullptr, p.numel()});
  }
  last_step_kernels_ = (starting.empty() ? 0 : 1) + (continuing.empty() ? 0 : 1);
  if (!device) return;
  if (!starting.empty()) backend_for(*device).sgd_step(starting, hyper, backend_for(*device).default_stream());
  hyper.first_step = false;
  if (!continuing.empty()) backend_for(*device).sgd_step(continuing, hyper, backend_for(*device).default_stream());
}

std::map<std::string, Tensor> SGD::state_dict() const {
  std::map<std::string, Tensor> out;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (has_buffer_[i]) out["state." + std::to_string(i) + ".momentum_buffer"] = momentum_buffers_[i].clone();
  }
  out["param_groups.0.lr"] = float64_scalar(options_.lr);
  out["param_groups.0.momentum"] = float64_scalar(options_.momentum);
  out["param_groups.0.dampening"] = float64_scalar(options_.dampening);
  out["param_groups.0.weight_decay"] = float64_scalar(options_.weight_decay);
  out["param_groups.0.nesterov"] = float64_scalar(options_.nesterov ? 1.0 : 0.0);
  return out;
}

void SGD::load_state_dict(const std::map<std::string, Tensor>& state) {
  const ParsedState parsed = parse_state(name_, state, params_, {"momentum_buffer"},
                                         {"lr", "momentum", "dampening", "weight_decay", "nesterov"});
  SGDOptions options = options_;
  for (const auto& [key, value] : parsed.options) {
    if (key == "lr") options.lr = value;
    if (key == "momentum") options.momentum = value;
    if (key == "dampening") options.dampening = value;
    if (key == "weight_decay") options.weight_decay = value;
    if (key == "nesterov") options.nesterov = value != 0.0;
  }
  const SGD validated(params_, options);  // the same checks as the constructor
  (void)validated;
  autograd::NoGradGuard no_grad;
  options_ = options;
  if (momentum_buffers_.empty()) momentum_buffers_ = make_state(1)[0];
  for (std::size_t i = 0; i < params_.size(); ++i) {
    auto found = parsed.per_param.find(i);
    has_buffer_[i] = found != parsed.per_param.end();
    if (has_buffer_[i]) copy_(momentum_buffers_[i], found->second.at("momentum_buffer"));
  }
}

void Adam::set_lr(double lr) {
  check_range(name_, "lr", lr, 0.0, false, 1e30);
  options_.lr = lr;
}

Adam::Adam(std::vector<Tensor> params, AdamOptions options) : Adam(std::move(params), options, false) {}

Adam::Adam(std::vector<Tensor> params, AdamOptions options, bool decoupled)
    : Optimizer(std::move(params), decoupled ? "AdamW" : "Adam"),
      options_(options),
      decoupled_(decoupled),
      steps_(params_.size(), 0) {
  check_range(name_, "lr", options.lr, 0.0, false, 1e30);
  check_range(name_, "eps", options.eps, 0.0, false, 1e30);
  check_range(name_, "beta1", options.beta1, 0.0, false, 1.0);
  check_range(name_, "beta2", options.beta2, 0.0, false, 1.0);
  check_range(name_, "weight_decay", options.weight_decay, 0.0, false, 1e30);
}

void Adam::ensure_state() {
  if (!exp_avg_.empty()) return;
  auto rows = make_state(2);
  exp_avg_ = std::move(rows[0]);
  exp_avg_sq_ = std::move(rows[1]);
}

std::int64_t Adam::step_count(std::size_t i) const {
  if (i >= steps_.size()) throw ValueError("Adam.step_count: no parameter " + std::to_string(i));
  return device_step_.defined() ? device_step_.item<std::int64_t>() : steps_[i];
}

void Adam::take_steps_to_host() {
  if (!device_step_.defined()) return;
  const auto count = device_step_.item<std::int64_t>();
  std::fill(steps_.begin(), steps_.end(), count);
  device_step_ = Tensor();
}

bool Adam::flat_step(const Tensor& found_inf) {
  // The count stays on the device (incremented by the kernel), so the step needs nothing from
  // the host and can be captured and replayed.
  const FlatArena* arena = flat_arena();
  float* m = flat_state_row(arena, 0);
  if (!m || (!device_step_.defined() &&
             !std::all_of(steps_.begin(), steps_.end(), [&](std::int64_t s) { return s == steps_[0]; }))) {
    return false;
  }
  if (!device_step_.defined())
    device_step_ = full({}, static_cast<double>(steps_[0]), DType::Int64, arena->values.device());
  const ParamBuffers flat{arena->values.data_ptr<float>(), arena->grads.data_ptr<float>(), m, flat_state_row(arena, 1),
                          arena->values.numel()};
  AdamHyper h{options_.lr, options_.beta1, options_.beta2, options_.eps, options_.weight_decay, decoupled_, 0};
  h.device_step = device_step_.data_ptr<std::int64_t>();
  h.found_inf = found_inf.defined() ? found_inf.data_ptr<float>() : nullptr;
  for (const Tensor* t :
       std::initializer_list<const Tensor*>{&arena->values, &arena->grads, &flat_state_, &device_step_, &found_inf}) {
    if (t->defined()) retain_for_replay(t->impl().storage);  // a captured step writes these at every replay
  }
  backend_for(arena->values.device()).adam_step({&flat, 1}, h, stream_of(arena->values));
  last_step_kernels_ = 1;
  return true;
}

bool Adam::step_unless(const Tensor& found_inf) {
  autograd::NoGradGuard no_grad;
  if (params_.empty()) return false;
  ensure_state();
  if (found_inf.dtype() != DType::Float32 || found_inf.numel() != 1 || found_inf.device() != params_[0].device()) {
    throw ValueError(name_ + ".step_unless: found_inf must be one float32 on the parameters' device");
  }
  return flat_step(found_inf);
}

void Adam::step() {
  autograd::NoGradGuard no_grad;
  ensure_state();
  const auto hyper = [&](std::int64_t step) {
    return AdamHyper{options_.lr, options_.beta1, options_.beta2, options_.eps, options_.weight_decay, decoupled_,
                     step};
  };
  if (flat_step(Tensor())) return;
  take_steps_to_host();
  // Otherwise one fused call per step count (normally one call for every parameter).
  std::map<std::int64_t, std::vector<ParamBuffers>> by_step;
  std::vector<Tensor> grads;  // keeps contiguous gradient copies alive during the kernels
  std::optional<Device> device;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    check_one_device(name_, device, p, i);
    grads.push_back(checked_grad(p, i, name_));
    by_step[++steps_[i]].push_back({p.data_ptr<float>(), grads.back().data_ptr<float>(), exp_avg_[i].data_ptr<float>(),
                                    exp_avg_sq_[i].data_ptr<float>(), p.numel()});
  }
  last_step_kernels_ = by_step.size();
  for (auto& [step, buffers] : by_step) {
    backend_for(*device).adam_step(buffers, hyper(step), backend_for(*device).default_stream());
  }
}

std::map<std::string, Tensor> Adam::state_dict() const {
  std::map<std::string, Tensor> out;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::int64_t steps = step_count(i);
    if (steps == 0) continue;
    const std::string prefix = "state." + std::to_string(i) + ".";
    out[prefix + "step"] = scalar_tensor(static_cast<double>(steps), DType::Int64);
    out[prefix + "exp_avg"] = exp_avg_[i].clone();
    out[prefix + "exp_avg_sq"] = exp_avg_sq_[i].clone();
  }
  out["param_groups.0.lr"] = float64_scalar(options_.lr);
  out["param_groups.0.beta1"] = float64_scalar(options_.beta1);
  out["param_groups.0.beta2"] = float64_scalar(options_.beta2);
  out["param_groups.0.eps"] = float64_scalar(options_.eps);
  out["param_groups.0.weight_decay"] = float64_scalar(options_.weight_decay);
  return out;
}

void Adam::load_state_dict(const std::map<std::string, Tensor>& state) {
  const ParsedState parsed = parse_state(name_, state, params_, {"step", "exp_avg", "exp_avg_sq"},
                                         {"lr", "beta1", "beta2", "eps", "weight_decay"});
  AdamOptions options = options_;
  for (const auto& [key, value] : parsed.options) {
    if (key == "lr") options.lr = value;
    if (key == "beta1") options.beta1 = value;
    if (key == "beta2") options.beta2 = value;
    if (key == "eps") options.eps = value;
    if (key == "weight_decay") options.weight_decay = value;
  }
  const Adam validated(params_, options, decoupled_);  // the same checks as the constructor
  (void)validated;
  autograd::NoGradGuard no_grad;
  options_ = options;
  ensure_state();
  device_step_ = Tensor();  // the loaded counts are per parameter, on the host (a captured step
                            // must be captured again: CapturedStep::recapture())
  for (std::size_t i = 0; i < params_.size(); ++i) {
    auto found = parsed.per_param.find(i);
    if (found == parsed.per_param.end()) {
      steps_[i] = 0;
      zero_(exp_avg_[i]);
      zero_(exp_avg_sq_[i]);
      continue;
    }
    steps_[i] = static_cast<std::int64_t>(found->second.at("step").item_double());
    copy_(exp_avg_[i], found->second.at("exp_avg"));
    copy_(exp_avg_sq_[i], found->second.at("exp_avg_sq"));
  }
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options) : Adam(std::move(params), options, true) {}

}  // namespace accel::optim
