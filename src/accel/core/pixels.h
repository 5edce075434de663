// A uint8 pixel as a float in [0, 1]: pixel / 255.0f, bit for bit as torchvision's ToTensor
// divides, without a division. The product with the reciprocal is off by one rounding for 126
// of the 256 values; one FMA step (Markstein's correction) makes all 256 exact (tests/data
// checks every one). The host loader and the device gathers (CPU and CUDA) share it, so a
// batch is the same wherever it is made.
#pragma once

#include <math.h>

#include <cstdint>

#include "accel/core/host_device.h"

namespace accel {

ACCEL_HD inline float pixel_to_unit(std::uint8_t pixel) {
  constexpr float kReciprocal = 1.0f / 255.0f;
  const auto x = static_cast<float>(pixel);
  const float q = x * kReciprocal;
  return fmaf(fmaf(-q, 255.0f, x), kReciprocal, q);
}

// A run of pixels, on the host (the loader's batches, the CPU backend's gather); vectorised,
// fmaf being one instruction.
inline void pixels_to_unit(const std::uint8_t* __restrict pixels, float* __restrict out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = pixel_to_unit(pixels[i]);
}

}  // namespace accel
