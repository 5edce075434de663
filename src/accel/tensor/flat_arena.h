// FlatArena: a set of leaf tensors (a model's parameters) packed as views into one allocation,
// with their gradients kept at fixed places in a second allocation of the same layout.
//
//   auto arena = pack_into_arena(model.parameters());   // nn::Module::pack_parameters() calls this
//   loss.backward();                                     // each p.grad() is a view of arena->grads
//
// Why: an optimizer then updates every parameter with one kernel over three flat buffers
// (values, gradients, its own state) instead of one call per tensor, and the buffers keep their
// addresses from step to step, which a captured step (and a CUDA Graph) needs.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "accel/tensor/tensor.h"

namespace accel {

struct FlatArena {
  Tensor values;  // 1-D float32 holding every member, each at a 64-byte aligned offset
  Tensor grads;   // 1-D float32, same layout; zeros between members
  std::size_t members = 0;
  // Members are laid out from 0 in the order given; padding elements stay zero, so a fused
  // optimizer step over the whole buffer leaves them zero (Adam and SGD map 0, 0 to 0).
  static constexpr std::int64_t kAlignElements = 16;
};

// Moves `leaves` (distinct leaf tensors that require grad, float32, on one device) into one
// allocation: each keeps its handle and values and becomes a view; their gradients are
// dropped and from now on accumulate at fixed views of `grads`. Throws ValueError/DTypeError/
// DeviceError naming the offending tensor.
std::shared_ptr<const FlatArena> pack_into_arena(const std::vector<Tensor>& leaves);

// The arena whose members are exactly `tensors` (all of them, each once), or null.
const FlatArena* arena_holding(const std::vector<Tensor>& tensors);

// A member's place in its arena: the element offset of its first value (and gradient).
std::int64_t arena_offset(const Tensor& member);

// Whether a member's gradient is the one at its fixed place (not none, not replaced by hand).
bool grad_at_home(const Tensor& member);

}  // namespace accel
