#include "accel/data/dataloader.h"

#include <algorithm>
#include <numeric>

#include "accel/backends/cpu/parallel.h"  // parallel_for: the gather runs on every core

namespace accel::data {

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
  // pixel / 255 exactly as torchvision's ToTensor computes it, looked up instead of divided.
  static const std::vector<float> kUnit = [] {
    std::vector<float> table(256);
    for (int v = 0; v < 256; ++v) table[static_cast<std::size_t>(v)] = static_cast<float>(v) / 255.0f;
    return table;
  }();
  const float* unit = kUnit.data();
  cpu::parallel_for(count, std::max<std::int64_t>(1, cpu::kParallelThreshold / std::max<std::int64_t>(features, 1)),
                    [&](std::int64_t begin, std::int64_t end) {
                      for (std::int64_t r = begin; r < end; ++r) {
                        const std::int64_t row = rows[static_cast<std::size_t>(r)];
                        const std::uint8_t* pixels = src + row * features;
                        float* dst = x + r * features;
                        for (std::int64_t f = 0; f < features; ++f) dst[f] = unit[pixels[f]];
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
