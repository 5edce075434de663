// Autocast: PyTorch's torch.autocast for accel's ops. Inside the scope, ops on the scope's
// device type run in the dtype PyTorch's op lists give them:
//   - lower precision (the scope's dtype, bfloat16 by default): matmul, linear (and linear_relu, mlp);
//   - float32: softmax, log_softmax, cross_entropy, mse_loss, sum, exp, log;
//   - everything else runs in its inputs' promoted type (relu, add, mul, ...);
//   - float64 tensors are never cast (PyTorch's rule).
// Casts are ordinary differentiable ops, so float32 parameters receive float32 gradients.
// Backward runs in the dtypes the forward chose: the autograd engine turns autocast off while
// it runs the gradient rules.
//
//   {
//     amp::Autocast autocast(DeviceType::CPU, DType::BFloat16);
//     loss = criterion(model(x), y);   // GEMMs in bfloat16, the loss in float32
//   }
//   loss.backward();
#pragma once

#include <optional>

#include "accel/tensor/tensor.h"

namespace accel::amp {

struct AutocastState {
  bool enabled = false;
  DeviceType device = DeviceType::CPU;
  DType dtype = DType::BFloat16;
};

// This thread's autocast state.
AutocastState& autocast_state();

// Enables (or disables) autocast for one device type for the guard's lifetime, restoring the
// previous state after. Throws DTypeError for a dtype other than bfloat16 or float16.
class Autocast {
 public:
  Autocast(DeviceType device, DType dtype = DType::BFloat16, bool enabled = true);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  AutocastState previous_;
};

enum class CastPolicy { LowerPrecision, Float32 };

// `t` as the active autocast policy wants it for an op of `policy` (t itself when autocast is
// off, t is not floating point, or t is on another device type).
Tensor autocast_input(const Tensor& t, CastPolicy policy);

}  // namespace accel::amp
