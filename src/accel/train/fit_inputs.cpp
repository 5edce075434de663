#include "accel/train/fit_inputs.h"

#include <atomic>
#include <cmath>
#include <cstdint>

#include "accel/core/parallel.h"
#include "accel/data/dataloader.h"  // scale_pixels

namespace accel::train {

std::string shape_text(const Tensor& t) { return std::string(dtype_name(t.dtype())) + " " + t.shape().to_string(); }

void check_finite(const Tensor& t, const std::string& what) {
  if (t.dtype() != DType::Float32) return;
  const auto* bits = static_cast<const std::uint32_t*>(t.raw_data());
  // Exponent bits all ones is inf or NaN: an integer test the compiler vectorises, so the scan
  // runs at memory speed; the slow search for the place runs only when something is there.
  std::atomic<bool> any_bad = false;
  parallel_for(t.numel(), kParallelThreshold, [&](std::int64_t begin, std::int64_t end) {
    std::uint32_t bad = 0;
    for (std::int64_t i = begin; i < end; ++i)
      bad |= static_cast<std::uint32_t>((bits[i] & 0x7f800000u) == 0x7f800000u);
    if (bad) any_bad = true;
  });
  if (!any_bad) return;
  const float* values = t.data_ptr<float>();
  const std::int64_t per_row = t.dim() > 0 && t.shape()[0] > 0 ? t.numel() / t.shape()[0] : 1;
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    if (!std::isfinite(values[i])) {
      throw DataError(what + " holds " + std::to_string(values[i]) + " in sample " + std::to_string(i / per_row) +
                      " (element " + std::to_string(i % per_row) + "): clean the data before training");
    }
  }
}

Tensor prepare_inputs(const Tensor& x, const std::string& what) {
  if (!x.defined()) throw ValueError(what + " is undefined");
  if (x.dim() < 1 || x.shape()[0] == 0) {
    throw ShapeError(what + " has no samples (" + shape_text(x) + "): its first dimension counts samples");
  }
  if (x.dtype() == DType::Bool) throw DTypeError(what + " is bool: convert it to float32");
  if (x.dtype() == DType::UInt8) return data::scale_pixels(x.detach());
  Tensor out = x.detach().to(kCPU).to(DType::Float32).contiguous();
  check_finite(out, what);
  return out;
}

Tensor prepare_training_inputs(const Tensor& x, const std::string& what) {
  if (x.defined() && x.dtype() == DType::UInt8 && x.dim() >= 1 && x.shape()[0] > 0) {
    return x.detach().to(kCPU).contiguous();
  }
  return prepare_inputs(x, what);
}

}  // namespace accel::train
