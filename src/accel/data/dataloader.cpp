#include "accel/data/dataloader.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "accel/core/parallel.h"  // parallel_for: the gather runs on every core

namespace accel::data {
namespace {

// pixel / 255.0f, bit for bit as torchvision's ToTensor divides, without a division: the
// product with the reciprocal is off by one rounding for 126 of the 256 values, and one FMA
// step (Markstein's correction) makes all 256 exact (tests/data checks every one).
void pixels_to_unit(const std::uint8_t* __restrict pixels, float* __restrict out, std::int64_t n) {
  constexpr float kReciprocal = 1.0f / 255.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto x = static_cast<float>(pixels[i]);
    const float q = x * kReciprocal;
    out[i] = std::fma(std::fma(-q, 255.0f, x), kReciprocal, q);
  }
}

}  // namespace

DataLoader::DataLoader(Tensor images, Tensor labels, DataLoaderOptions options)
    : images_(images.contiguous()), labels_(labels.contiguous()), options_(options), gen_(options.seed) {
  if (images_.dtype() != DType::UInt8 || images_.dim() != 2) {
    throw DTypeError("DataLoader: images must be uint8 [N, features], got " + std::string(dtype_name(images_.dtype())) +
                     " " + images_.shape().to_string());
  }
  if (labels_.dtype() != DType::Int64 || labels_.dim() != 1 || labels_.shape()[0] != images_.shape()[0]) {
    throw ShapeError("DataLoader: labels must be int64 [" + std::to_string(images_.shape()[0]) + "], got " +
                     std::string(dtype_name(labels_.dtype())) + " " + labels_.shape().to_string());
  }
  if (options.batch_size <= 0) {
    throw ValueError("DataLoader: batch_size must be positive, got " + std::to_string(options.batch_size));
  }
  order_.resize(static_cast<std::size_t>(images_.shape()[0]));
  std::iota(order_.begin(), order_.end(), 0);
  if (options_.shuffle) shuffle_order();
}

void DataLoader::shuffle_order() {
  for (std::size_t i = order_.size(); i > 1; --i) {  // Fisher-Yates
    std::swap(order_[i - 1], order_[gen_.below(i)]);
  }
}

void DataLoader::next_epoch() {
  if (options_.shuffle) shuffle_order();
}

std::size_t DataLoader::size() const {
  const auto n = order_.size();
  const auto b = static_cast<std::size_t>(options_.batch_size);
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<std::int64_t> DataLoader::batch_indices(std::size_t index) const {
  if (index >= size()) {
    throw ValueError("DataLoader: batch " + std::to_string(index) + " is out of range (" + std::to_string(size()) +
                     " batches)");
  }
  const std::size_t begin = index * static_cast<std::size_t>(options_.batch_size);
  const std::size_t end = std::min(order_.size(), begin + static_cast<std::size_t>(options_.batch_size));
  return {order_.begin() + static_cast<std::ptrdiff_t>(begin), order_.begin() + static_cast<std::ptrdiff_t>(end)};
}

Batch DataLoader::batch(std::size_t index) const {
  const std::vector<std::int64_t> rows = batch_indices(index);
  const auto count = static_cast<std::int64_t>(rows.size());
  const std::int64_t features = images_.shape()[1];
  Batch out{empty(Shape{count, features}, DType::Float32), empty(Shape{count}, DType::Int64)};
  const std::uint8_t* src = images_.data_ptr<std::uint8_t>();
  const std::int64_t* all_labels = labels_.data_ptr<std::int64_t>();
  float* x = out.inputs.data_ptr<float>();
  std::int64_t* y = out.labels.data_ptr<std::int64_t>();
  parallel_for(count, std::max<std::int64_t>(1, kParallelThreshold / std::max<std::int64_t>(features, 1)),
               [&](std::int64_t begin, std::int64_t end) {
                 for (std::int64_t r = begin; r < end; ++r) {
                   const std::int64_t row = rows[static_cast<std::size_t>(r)];
                   pixels_to_unit(src + row * features, x + r * features, features);
                   y[r] = all_labels[row];
                 }
               });
  if (!options_.device.is_cpu()) {
    out.inputs = out.inputs.to(options_.device);
    out.labels = out.labels.to(options_.device);
  }
  return out;
}

}  // namespace accel::data
