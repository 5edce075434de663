// What fit, evaluate and predict check in their inputs before the first step, on any device.
#pragma once

#include <string>

#include "accel/tensor/tensor.h"

namespace accel::train {

// "float32 [64, 784]"
std::string shape_text(const Tensor& t);
// Throws DataError naming the sample when a float32 tensor holds NaN or inf.
void check_finite(const Tensor& t, const std::string& what);
// x as evaluate and predict take it: float32, contiguous, on the CPU, every value finite.
// uint8 x is images: each pixel / 255, as the DataLoader (and torchvision's ToTensor) scales it.
Tensor prepare_inputs(const Tensor& x, const std::string& what);
// x as fit trains on it: uint8 images stay uint8 (the DataLoader scales each batch as it
// gathers it, and a device holds a quarter of the bytes); anything else as prepare_inputs.
Tensor prepare_training_inputs(const Tensor& x, const std::string& what);

}  // namespace accel::train
