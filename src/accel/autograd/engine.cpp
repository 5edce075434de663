#include "accel/autograd/engine.h"

#include <algorithm>
#include <unordered_map>

#include "accel/autograd/grad_mode.h"
#include "accel/autograd/node.h"
#include "accel/ops/autocast.h"
#include "accel/ops/ops.h"  // add (gradient accumulation), ones_like

namespace accel::autograd {
namespace {

thread_local bool grad_enabled = true;
thread_local const std::vector<Tensor>* destinations = nullptr;  // the running rule's (gradient_destination)

// Offers `slots` to the rule that runs in its lifetime, then restores what was offered before (a
// rule may run a backward of its own).
class DestinationScope {
 public:
  explicit DestinationScope(const std::vector<Tensor>& slots) : previous_(destinations) { destinations = &slots; }
  ~DestinationScope() { destinations = previous_; }
  DestinationScope(const DestinationScope&) = delete;
  DestinationScope& operator=(const DestinationScope&) = delete;

 private:
  const std::vector<Tensor>* previous_;
};

// The arena slots a node's rule may write its leaf inputs' gradients into: those of leaves that
// have a slot and no gradient yet, each offered once (a leaf that is two inputs of one node gets
// its gradients summed, not written over each other). Empty when there is none.
std::vector<Tensor> destinations_for(const Node& node) {
  std::vector<Tensor> out;
  const auto& inputs = node.inputs();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const TensorImpl* leaf = inputs[i].leaf.get();
    if (!leaf || !leaf->grad_home || leaf->grad) continue;
    const bool repeated = std::any_of(inputs.begin(), inputs.end(),
                                      [&](const Edge& e) { return e.leaf.get() == leaf && &e != &inputs[i]; });
    if (repeated) continue;
    out.resize(inputs.size());
    out[i] = Tensor(inputs[i].leaf->grad_home);
  }
  return out;
}

// Adds `grad` into an accumulated gradient. The first contribution is kept as is when nothing
// else references it (the common case), which saves a copy per parameter per step.
void accumulate(std::shared_ptr<TensorImpl>& slot, const Tensor& grad) {
  if (!slot) {
    const bool sole_owner = grad.impl_ptr().use_count() <= 2 && grad.impl().storage.use_count() == 1;
    slot = sole_owner ? grad.impl_ptr() : grad.clone().impl_ptr();
    return;
  }
  Tensor existing(slot);
  if (existing.impl().storage.use_count() == 1 && existing.is_contiguous()) {
    add_(existing, grad);  // in place: the slot owns its buffer
  } else {
    slot = add(existing, grad).impl_ptr();
  }
}

// A leaf's gradient: at its fixed place in an arena when it has one (flat_arena.h), so the
// buffer an optimizer reads keeps its address; otherwise as accumulate() above.
void accumulate_leaf(TensorImpl& leaf, const Tensor& grad) {
  if (leaf.grad_home && (!leaf.grad || leaf.grad == leaf.grad_home)) {
    Tensor home(leaf.grad_home);
    if (leaf.grad) {
      add_(home, grad);
    } else {
      if (grad.impl_ptr() != leaf.grad_home) copy_(home, grad);  // else the rule wrote it there
      leaf.grad = leaf.grad_home;
    }
    return;
  }
  accumulate(leaf.grad, grad);
}

}  // namespace

bool is_grad_enabled() { return grad_enabled; }

Tensor gradient_destination(std::size_t input) {
  return destinations && input < destinations->size() ? (*destinations)[input] : Tensor();
}
void set_grad_enabled(bool enabled) { grad_enabled = enabled; }

std::vector<Tensor> Node::apply(const Tensor& grad_output) const {
  std::vector<bool> needs(inputs_.size());
  for (std::size_t i = 0; i < inputs_.size(); ++i) needs[i] = inputs_[i].needed();
  return backward_(grad_output, needs);
}

void record(const char* name, Tensor& output, const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (!is_grad_enabled()) return;
  bool any = false;
  std::vector<Edge> edges(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    if (!in.defined() || !in.requires_grad()) continue;
    any = true;
    if (in.grad_fn()) {
      edges[i].node = in.grad_fn();
    } else {
      edges[i].leaf = in.impl_ptr();
    }
  }
  if (!any) return;
  output.impl().requires_grad = true;
  output.impl().grad_fn = std::make_shared<Node>(name, std::move(edges), std::move(backward));
}

void backward(const Tensor& root, const Tensor& gradient) {
  if (!root.requires_grad()) {
    throw ValueError(
        "backward: the tensor does not require grad (no parameter or input with "
        "requires_grad_() contributed to it, or it was computed under NoGradGuard)");
  }
  Tensor seed = gradient;
  if (!seed.defined()) {
    if (root.numel() != 1) {
      throw ShapeError(
          "backward: grad can be implicitly created only for a one-element output, "
          "this one is " +
          root.shape().to_string() + "; pass a gradient of that shape");
    }
    seed = ones(root.shape(), root.dtype(), root.device());
  } else if (seed.shape() != root.shape()) {
    throw ShapeError("backward: gradient shape " + seed.shape().to_string() + " does not match the output's " +
                     root.shape().to_string());
  }
  NoGradGuard no_grad;  // gradient rules run without recording
  // ... and in the dtypes the forward chose: autocast would cast their operands again.
  const amp::Autocast no_autocast(amp::autocast_state().device, amp::autocast_state().dtype, false);
  if (!root.grad_fn()) {
    accumulate_leaf(root.impl(), seed);
    return;
  }
  // Topological order by iterative depth-first search (deep tapes must not overflow the stack).
  std::vector<Node*> order;
  std::unordered_map<Node*, int> state;  // 1 = on stack, 2 = done
  std::vector<std::pair<Node*, std::size_t>> stack{{root.grad_fn().get(), 0}};
  state[root.grad_fn().get()] = 1;
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs().size()) {
      Node* child = node->inputs()[next++].node.get();
      if (child && state[child] == 0) {
        state[child] = 1;
        stack.emplace_back(child, 0);
      }
    } else {
      state[node] = 2;
      order.push_back(node);
      stack.pop_back();
    }
  }
  std::unordered_map<Node*, std::shared_ptr<TensorImpl>> grads;
  grads[root.grad_fn().get()] = seed.impl_ptr();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    auto found = grads.find(node);
    if (found == grads.end() || !found->second) continue;
    const Tensor grad_output(std::move(found->second));
    grads.erase(found);
    std::vector<Tensor> input_grads;
    {
      const std::vector<Tensor> slots = destinations_for(*node);
      const DestinationScope offered(slots);
      input_grads = node->apply(grad_output);
    }
    for (std::size_t i = 0; i < node->inputs().size(); ++i) {
      const Edge& edge = node->inputs()[i];
      if (!edge.needed() || i >= input_grads.size() || !input_grads[i].defined()) continue;
      if (edge.node) {
        accumulate(grads[edge.node.get()], input_grads[i]);
      } else {
        accumulate_leaf(*edge.leaf, input_grads[i]);
      }
    }
  }
}

}  // namespace accel::autograd
