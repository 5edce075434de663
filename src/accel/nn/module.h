// Module: the base of every layer, as torch.nn.Module: named parameters and children,
// train/eval mode, to(device), state dicts.
//
//   struct Mlp : nn::Module { ... register_parameter("w", ...); register_module("fc", ...); };
//   for (auto& [name, p] : model.named_parameters()) ...
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "accel/tensor/tensor.h"

namespace accel::nn {

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& input) = 0;
  Tensor operator()(const Tensor& input) { return forward(input); }
  // "Linear(in_features=784, out_features=256)"
  virtual std::string to_string() const = 0;

  // Parameters of this module and its children, depth first, in registration order.
  std::vector<Tensor> parameters() const;
  // Names as PyTorch prints them: "0.weight", "2.bias".
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves every parameter in place (handles held elsewhere see the move, like
  // `param.data = param.data.to(device)`). Throws DeviceError for an unavailable device.
  Module& to(Device device);
  // Sets every parameter's grad to none (PyTorch 2's default).
  void zero_grad();

  // Packs every parameter into one allocation and gives their gradients fixed places in a
  // second (tensor/flat_arena.h), so optimizers update the model with one fused kernel. Handles
  // and values are kept, gradients dropped. to(device) keeps the model packed.
  void pack_parameters();
  bool is_packed() const { return packed_; }

  // Copies of the parameters by name; load_state_dict checks names and shapes and copies in.
  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);

 protected:
  // Registers a leaf that requires grad; returns the handle for the layer to keep.
  Tensor register_parameter(std::string name, Tensor value);
  template <typename M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    children_.emplace_back(std::move(name), module);
    return module;
  }

 private:
  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  bool packed_ = false;
};

}  // namespace accel::nn
