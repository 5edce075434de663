// DataLoader: batches of (inputs, labels) drawn from two tensors with the same first dimension,
// shuffled with a seed. uint8 inputs are images, scaled to [0, 1] as torchvision's ToTensor
// does; float32 inputs are taken as they are; labels may be any dtype and shape [N, ...] (class
// indices as int64 [N], regression targets as float32 [N, k]).
//
//   DataLoader loader(train.images, train.labels, {.batch_size = 64, .shuffle = true, .seed = 0});
//   for (std::size_t i = 0; i < loader.size(); ++i) { Batch b = loader.batch(i); ... }
//   loader.next_epoch();  // draws a new order
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "accel/tensor/generator.h"
#include "accel/tensor/tensor.h"

namespace accel::data {

// uint8 images as float32 in [0, 1], each pixel / 255 exactly as torchvision's ToTensor divides
// (the DataLoader's own conversion, for a whole data set at once: what Model::fit takes).
Tensor scale_pixels(const Tensor& images);

struct DataLoaderOptions {
  std::int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  std::uint64_t seed = 0;
  Device device = kCPU;  // where batches are delivered
};

// PyTorch's TensorDataset: sample i is row i of each tensor (inputs [N, ...], labels [N, ...]).
struct TensorDataset {
  Tensor inputs;
  Tensor labels;
};

struct Batch {
  Tensor inputs;  // float32 [B, ...]: the rows of the inputs (uint8 scaled to [0, 1])
  Tensor labels;  // [B, ...] in the labels' dtype
};

// t's shape with its first dimension (samples) set to `rows`: a batch's shape.
Shape with_rows(const Tensor& t, std::int64_t rows);
// Whether out's tensors can take a batch of `rows` rows in place: contiguous, on `device`,
// float32 inputs of `inputs`' row shape and labels of `labels`' dtype and row shape.
bool can_hold_batch(const Batch& out, std::int64_t rows, const Tensor& inputs, const Tensor& labels, Device device);

class DataLoader {
 public:
  // inputs: uint8 or float32 [N, ...]; labels: [N, ...] of any dtype. Throws DTypeError or
  // ShapeError naming what to change.
  DataLoader(Tensor inputs, Tensor labels, DataLoaderOptions options);
  DataLoader(const TensorDataset& dataset, DataLoaderOptions options)
      : DataLoader(dataset.inputs, dataset.labels, options) {}

  // Batches per epoch.
  std::size_t size() const;
  // parallel = false gathers on the calling thread alone (a background prefetching thread).
  Batch batch(std::size_t index, bool parallel = true) const;
  // Batch `index` written into `out` in place, when out's tensors are contiguous CPU tensors of
  // exactly its shapes and dtypes (a captured step's own input buffers, say): no allocation and
  // no copy after. Returns false, and leaves `out` alone, when they are not (a short last batch);
  // options.device plays no part.
  bool batch_into(std::size_t index, Batch& out, bool parallel = true) const;
  // Batch `index`'s rows as the data set stores them (uint8 images unscaled), written on the
  // calling thread to `inputs` and `labels`, which hold batch_size() rows of each (a loader
  // thread filling staging buffers, data/staged_batches.h). Returns the rows written.
  std::int64_t stored_rows_into(std::size_t index, void* inputs, void* labels) const;
  // The sample indices of batch `index` in the current order, and how many there are.
  std::vector<std::int64_t> batch_indices(std::size_t index) const;
  std::int64_t batch_rows(std::size_t index) const;
  // Reshuffles (when shuffling) for the next epoch.
  void next_epoch();
  std::int64_t num_samples() const { return static_cast<std::int64_t>(order_.size()); }
  std::int64_t batch_size() const { return options_.batch_size; }
  // The data set as given (contiguous, on the host).
  const Tensor& inputs() const { return inputs_; }
  const Tensor& labels() const { return labels_; }

  // What a checkpoint keeps to carry on mid-epoch with the same batches: the current order and
  // the shuffling generator (Generator::state()).
  const std::vector<std::int64_t>& order() const { return order_; }
  // Grows whenever the order changes (a shuffle, a restore): a copy of it elsewhere knows when
  // it is stale.
  std::uint64_t order_version() const { return order_version_; }
  std::string shuffle_state() const { return gen_.state(); }
  // Restores both; throws ValueError when `order` is not a permutation of this loader's samples.
  void restore(std::vector<std::int64_t> order, const std::string& shuffle_state);

 private:
  void shuffle_order();
  std::pair<std::size_t, std::size_t> batch_range(std::size_t index) const;  // [begin, end) in order_
  // Rows `rows` to inputs_out (float32, uint8 images scaled; or as stored) and labels_out.
  void gather(const std::vector<std::int64_t>& rows, void* inputs_out, void* labels_out, bool as_stored,
              bool parallel) const;

  Tensor inputs_, labels_;
  DataLoaderOptions options_;
  Generator gen_;
  std::vector<std::int64_t> order_;
  std::uint64_t order_version_ = 0;
};

}  // namespace accel::data
