#include "accel/ops/autocast.h"

#include <string>

namespace accel::amp {

AutocastState& autocast_state() {
  thread_local AutocastState state;
  return state;
}

Autocast::Autocast(DeviceType device, DType dtype, bool enabled) : previous_(autocast_state()) {
  if (dtype != DType::BFloat16 && dtype != DType::Float16) {
    throw DTypeError("autocast: the lower precision dtype must be bfloat16 or float16, got " +
                     std::string(dtype_name(dtype)));
  }
  autocast_state() = AutocastState{enabled, device, dtype};
}

Autocast::~Autocast() { autocast_state() = previous_; }

Tensor autocast_input(const Tensor& t, CastPolicy policy) {
  const AutocastState& state = autocast_state();
  // float64 is not eligible, as in PyTorch's cached_cast: autocast never lowers it.
  if (!state.enabled || !t.defined() || !is_floating_point(t.dtype()) || t.dtype() == DType::Float64 ||
      t.device().type != state.device) {
    return t;
  }
  return t.to(policy == CastPolicy::Float32 ? DType::Float32 : state.dtype);
}

}  // namespace accel::amp
