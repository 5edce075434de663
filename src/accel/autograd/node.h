// Node: one recorded op on the autograd tape. Each differentiable op records a node whose
// backward rule sits next to the op (ops/*.cpp), as tinygrad's rule table and Flashlight's
// gradFunc do.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "accel/tensor/tensor.h"

namespace accel::autograd {

// Where the gradient for one input of a node goes: into another node (a non-leaf input), into
// a leaf's .grad, or nowhere (the input does not require grad).
struct Edge {
  std::shared_ptr<Node> node;
  std::shared_ptr<TensorImpl> leaf;
  bool needed() const { return node != nullptr || leaf != nullptr; }
};

// The gradient rule: given dL/d(output), returns dL/d(input i) for each input. An entry may be
// left undefined where needs_grad[i] is false: the rule should skip that work (the seed's
// first Linear never computes a gradient for the images).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output, const std::vector<bool>& needs_grad)>;

class Node {
 public:
  Node(std::string name, std::vector<Edge> inputs, BackwardFn backward)
      : name_(std::move(name)), inputs_(std::move(inputs)), backward_(std::move(backward)) {}

  const std::string& name() const { return name_; }
  const std::vector<Edge>& inputs() const { return inputs_; }
  std::vector<Tensor> apply(const Tensor& grad_output) const;

 private:
  std::string name_;
  std::vector<Edge> inputs_;
  BackwardFn backward_;
};

// While the engine runs a node's rule: where the rule may write the gradient of input `input`,
// or an undefined tensor. It is a parameter's fixed slot in its model's gradient arena
// (tensor/flat_arena.h) that holds no gradient yet. A rule that writes the whole gradient there
// (the slot's shape and dtype, contiguous) and returns this very tensor saves the engine the
// copy into the arena: at the seed's first layer, 800 KB a step.
Tensor gradient_destination(std::size_t input);

// Records `backward` as the grad_fn of `output` when grad mode is on and any input requires
// grad; otherwise does nothing. Ops call this once per differentiable result.
void record(const char* name, Tensor& output, const std::vector<Tensor>& inputs, BackwardFn backward);

}  // namespace accel::autograd
