#include "accel/optim/optimizer.h"

#include <map>
#include <optional>
#include <string>

#include "accel/autograd/grad_mode.h"
#include "accel/backends/backend.h"
#include "accel/ops/ops.h"

namespace accel::optim {
namespace {

void check_range(const char* optimizer, const char* name, double value, double low, bool low_open, double high) {
  const bool ok = (low_open ? value > low : value >= low) && value < high;
  if (!ok) {
    throw ValueError(std::string(optimizer) + ": " + name + " = " + std::to_string(value) + " is invalid (valid: " +
                     (low_open ? "(" : "[") + std::to_string(low) + ", " + std::to_string(high) + "))");
  }
}

// The gradient's buffers as the fused kernel reads them: contiguous float32 on the parameter's device.
Tensor checked_grad(const Tensor& p, std::size_t index, const char* optimizer) {
  Tensor g = p.grad();
  if (g.shape() != p.shape() || g.dtype() != DType::Float32 || g.device() != p.device()) {
    throw ValueError(std::string(optimizer) + ": parameter " + std::to_string(index) + " has a gradient " +
                     g.shape().to_string() + " " + std::string(dtype_name(g.dtype())) + " on " +
                     g.device().to_string() + " that does not match the parameter " + p.shape().to_string());
  }
  return g.contiguous();
}

void check_one_device(const char* optimizer, std::optional<Device>& device, const Tensor& p, std::size_t index) {
  if (!device) device = p.device();
  if (p.device() != *device) {
    throw DeviceError(std::string(optimizer) + ": parameter " + std::to_string(index) + " is on " +
                      p.device().to_string() + " but earlier ones are on " + device->to_string() +
                      "; move the whole model with model.to(device)");
  }
}

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params) : params_(std::move(params)) {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    if (!p.defined() || !p.is_leaf() || !p.requires_grad()) {
      throw ValueError("optimizer: parameter " + std::to_string(i) +
                       " is not a leaf tensor that requires grad (pass model.parameters())");
    }
    if (p.dtype() != DType::Float32 || !p.is_contiguous()) {
      throw DTypeError("optimizer: parameter " + std::to_string(i) + " must be contiguous float32, got " +
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

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : Optimizer(std::move(params)),
      options_(options),
      momentum_buffers_(params_.size()),
      has_buffer_(params_.size(), false) {
  check_range("SGD", "lr", options.lr, 0.0, false, 1e30);
  check_range("SGD", "momentum", options.momentum, 0.0, false, 1e30);
  check_range("SGD", "weight_decay", options.weight_decay, 0.0, false, 1e30);
  if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
    throw ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0");
  }
}

void SGD::step() {
  autograd::NoGradGuard no_grad;
  // A momentum buffer starts as a copy of the gradient, so parameters on their first momentum
  // step go in a fused call of their own.
  std::vector<ParamBuffers> starting, continuing;
  std::vector<Tensor> grads;  // keeps contiguous gradient copies alive during the kernels
  std::optional<Device> device;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    check_one_device("SGD", device, p, i);
    grads.push_back(checked_grad(p, i, "SGD"));
    float* buffer = nullptr;
    bool first = false;
    if (options_.momentum != 0.0) {
      if (!has_buffer_[i]) {
        momentum_buffers_[i] = empty(p.shape(), DType::Float32, p.device());
        has_buffer_[i] = first = true;
      }
      buffer = momentum_buffers_[i].data_ptr<float>();
    }
    (first ? starting : continuing)
        .push_back({p.data_ptr<float>(), grads.back().data_ptr<float>(), buffer, nullptr, p.numel()});
  }
  if (!device) return;
  SgdHyper hyper{static_cast<float>(options_.lr),
                 static_cast<float>(options_.momentum),
                 static_cast<float>(options_.dampening),
                 static_cast<float>(options_.weight_decay),
                 options_.nesterov,
                 true};
  if (!starting.empty()) backend_for(*device).sgd_step(starting, hyper);
  hyper.first_step = false;
  if (!continuing.empty()) backend_for(*device).sgd_step(continuing, hyper);
}

Adam::Adam(std::vector<Tensor> params, AdamOptions options) : Adam(std::move(params), options, false) {}

Adam::Adam(std::vector<Tensor> params, AdamOptions options, bool decoupled)
    : Optimizer(std::move(params)),
      options_(options),
      decoupled_(decoupled),
      exp_avg_(params_.size()),
      exp_avg_sq_(params_.size()),
      steps_(params_.size(), 0) {
  const char* name = decoupled ? "AdamW" : "Adam";
  check_range(name, "lr", options.lr, 0.0, false, 1e30);
  check_range(name, "eps", options.eps, 0.0, false, 1e30);
  check_range(name, "beta1", options.beta1, 0.0, false, 1.0);
  check_range(name, "beta2", options.beta2, 0.0, false, 1.0);
  check_range(name, "weight_decay", options.weight_decay, 0.0, false, 1e30);
}

void Adam::step() {
  autograd::NoGradGuard no_grad;
  // One fused call per step count: normally every parameter shares one, so the whole model is
  // updated by a single kernel.
  std::map<std::int64_t, std::vector<ParamBuffers>> by_step;
  std::vector<Tensor> grads;  // keeps contiguous gradient copies alive during the kernels
  std::optional<Device> device;
  const char* name = decoupled_ ? "AdamW" : "Adam";
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    check_one_device(name, device, p, i);
    grads.push_back(checked_grad(p, i, name));
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = zeros(p.shape(), DType::Float32, p.device());
      exp_avg_sq_[i] = zeros(p.shape(), DType::Float32, p.device());
    }
    by_step[++steps_[i]].push_back({p.data_ptr<float>(), grads.back().data_ptr<float>(), exp_avg_[i].data_ptr<float>(),
                                    exp_avg_sq_[i].data_ptr<float>(), p.numel()});
  }
  for (auto& [step, buffers] : by_step) {
    const AdamHyper hyper{options_.lr, options_.beta1, options_.beta2, options_.eps, options_.weight_decay, decoupled_,
                          step};
    backend_for(*device).adam_step(buffers, hyper);
  }
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options) : Adam(std::move(params), options, true) {}

}  // namespace accel::optim
