#include "accel/nn/module.h"

#include <set>

#include "accel/autograd/grad_mode.h"
#include "accel/ops/ops.h"  // copy_
#include "accel/tensor/flat_arena.h"

namespace accel::nn {

Tensor Module::register_parameter(std::string name, Tensor value) {
  value.requires_grad_(true);
  parameters_.emplace_back(std::move(name), value);
  return value;
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out = parameters_;
  for (const auto& [child_name, child] : children_) {
    for (auto& [name, p] : child->named_parameters()) out.emplace_back(child_name + "." + name, p);
  }
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

Module& Module::to(Device device) {
  std::vector<Tensor> params = parameters();
  bool moved_any = false;
  for (Tensor& p : params) {
    if (p.device() == device) continue;
    const Tensor moved = p.detach().to(device);
    TensorImpl& impl = p.impl();
    impl.storage = moved.impl().storage;
    impl.strides = moved.strides();
    impl.offset = moved.offset();
    impl.grad.reset();
    impl.arena.reset();
    impl.grad_home.reset();
    moved_any = true;
  }
  if (packed_ && moved_any) pack_into_arena(params);
  return *this;
}

void Module::pack_parameters() {
  pack_into_arena(parameters());
  packed_ = true;
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.set_grad(Tensor());
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& [name, p] : named_parameters()) out[name] = p.detach().clone();
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  std::set<std::string> unused;
  for (auto& [name, t] : state) unused.insert(name);
  autograd::NoGradGuard no_grad;
  for (auto& [name, p] : named_parameters()) {
    auto it = state.find(name);
    if (it == state.end()) {
      if (strict) throw ValueError("load_state_dict: missing key '" + name + "'");
      continue;
    }
    if (it->second.shape() != p.shape()) {
      throw ShapeError("load_state_dict: '" + name + "' has shape " + it->second.shape().to_string() +
                       " in the state dict but " + p.shape().to_string() + " in the model");
    }
    Tensor target = p;
    copy_(target, it->second);
    unused.erase(name);
  }
  if (strict && !unused.empty()) {
    throw ValueError("load_state_dict: unexpected key '" + *unused.begin() + "' (the model has no such parameter)");
  }
}

}  // namespace accel::nn
