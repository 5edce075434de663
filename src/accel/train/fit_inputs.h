// What fit, evaluate and predict check in their inputs before the first step, on any device.
#pragma once

#include <string>

#include "accel/tensor/tensor.h"

namespace accel::train {

// "float32 [64, 784]"
std::string shape_text(const Tensor& t);
// Throws DataError naming the sample when a float32 tensor holds NaN or inf.
void check_finite(const Tensor& t, const std::string& what);
// x as fit takes it: float32, contiguous, on the CPU, every value finite.
Tensor prepare_inputs(const Tensor& x, const std::string& what);

}  // namespace accel::train
