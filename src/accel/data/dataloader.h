// DataLoader: batches of (inputs, labels) from uint8 images, shuffled with a seed, scaled to
// [0, 1] and flattened, as torchvision's ToTensor + a flatten would give.
//
//   DataLoader loader(train.images, train.labels, {.batch_size = 64, .shuffle = true, .seed = 0});
//   for (std::size_t i = 0; i < loader.size(); ++i) { Batch b = loader.batch(i); ... }
//   loader.next_epoch();  // draws a new order
#pragma once

#include <cstdint>
#include <vector>

#include "accel/tensor/generator.h"
#include "accel/tensor/tensor.h"

namespace accel::data {

struct DataLoaderOptions {
  std::int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  std::uint64_t seed = 0;
  Device device = kCPU;  // where batches are delivered
};

struct Batch {
  Tensor inputs;  // float32 [B, features] in [0, 1]
  Tensor labels;  // int64 [B]
};

class DataLoader {
 public:
  // images: uint8 [N, features]; labels: int64 [N].
  DataLoader(Tensor images, Tensor labels, DataLoaderOptions options);

  // Batches per epoch.
  std::size_t size() const;
  Batch batch(std::size_t index) const;
  // The sample indices of batch `index` in the current order.
  std::vector<std::int64_t> batch_indices(std::size_t index) const;
  // Reshuffles (when shuffling) for the next epoch.
  void next_epoch();
  std::int64_t num_samples() const { return static_cast<std::int64_t>(order_.size()); }

 private:
  void shuffle_order();

  Tensor images_, labels_;
  DataLoaderOptions options_;
  Generator gen_;
  std::vector<std::int64_t> order_;
};

}  // namespace accel::data
