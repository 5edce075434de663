#include "accel/tensor/flat_arena.h"

#include <set>
#include <string>

#include "accel/backends/backend.h"
#include "accel/core/checked_math.h"
#include "accel/tensor/kernel_args.h"

namespace accel {
namespace {

void check_member(const Tensor& t, std::size_t index, const Tensor& first) {
  const std::string which = "pack_into_arena: tensor " + std::to_string(index);
  if (!t.defined() || !t.is_leaf() || !t.requires_grad()) {
    throw ValueError(which + " is not a leaf that requires grad (pass model.parameters())");
  }
  if (t.dtype() != DType::Float32) {
    throw DTypeError(which + " is " + std::string(dtype_name(t.dtype())) + "; an arena holds float32 parameters");
  }
  if (t.device() != first.device()) {
    throw DeviceError(which + " is on " + t.device().to_string() + " but tensor 0 is on " + first.device().to_string() +
                      "; move the whole model with model.to(device) first");
  }
}

std::shared_ptr<TensorImpl> view_of(const Tensor& flat, const Shape& shape, std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = flat.impl().storage;
  impl->shape = shape;
  impl->strides = shape.contiguous_strides();
  impl->offset = offset;
  impl->dtype = flat.dtype();
  return impl;
}

}  // namespace

std::shared_ptr<const FlatArena> pack_into_arena(const std::vector<Tensor>& leaves) {
  if (leaves.empty()) throw ValueError("pack_into_arena: no tensors to pack (the model has no parameters)");
  std::set<const TensorImpl*> seen;
  std::vector<std::int64_t> offsets;
  std::int64_t total = 0;
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    check_member(leaves[i], i, leaves[0]);
    if (!seen.insert(&leaves[i].impl()).second) {
      throw ValueError("pack_into_arena: tensor " + std::to_string(i) +
                       " is listed twice (shared parameters "
                       "are packed once: pass each parameter once)");
    }
    offsets.push_back(total);
    const auto end = checked_add<std::int64_t>(total, leaves[i].numel());
    const auto aligned = end ? checked_add<std::int64_t>(*end, FlatArena::kAlignElements - 1) : std::nullopt;
    if (!aligned) throw ShapeError("pack_into_arena: the parameters hold more than 2^63 elements");
    total = *aligned / FlatArena::kAlignElements * FlatArena::kAlignElements;
  }
  auto arena = std::make_shared<FlatArena>();
  const Device device = leaves[0].device();
  arena->values = zeros(Shape{total}, DType::Float32, device);
  arena->grads = zeros(Shape{total}, DType::Float32, device);
  arena->members = leaves.size();
  Backend& backend = backend_for(device);
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    const Tensor& leaf = leaves[i];
    const auto home = view_of(arena->values, leaf.shape(), offsets[i]);
    backend.copy(desc(leaf, "pack_into_arena"), desc(Tensor(home), "pack_into_arena"), backend.default_stream());
    TensorImpl& impl = leaf.impl();
    impl.storage = home->storage;
    impl.strides = home->strides;
    impl.offset = home->offset;
    impl.grad.reset();
    impl.arena = arena;
    impl.grad_home = view_of(arena->grads, leaf.shape(), offsets[i]);
  }
  return arena;
}

const FlatArena* arena_holding(const std::vector<Tensor>& tensors) {
  if (tensors.empty() || !tensors[0].defined()) return nullptr;
  const FlatArena* arena = tensors[0].impl().arena.get();
  if (!arena || tensors.size() != arena->members) return nullptr;
  std::set<const TensorImpl*> seen;
  for (const Tensor& t : tensors) {
    if (!t.defined() || t.impl().arena.get() != arena || !seen.insert(&t.impl()).second) return nullptr;
  }
  return arena;
}

std::int64_t arena_offset(const Tensor& member) {
  if (!member.impl().arena) throw ValueError("arena_offset: the tensor is not packed into an arena");
  return member.offset();
}

bool grad_at_home(const Tensor& member) {
  const TensorImpl& impl = member.impl();
  return impl.grad_home && impl.grad == impl.grad_home;
}

}  // namespace accel
