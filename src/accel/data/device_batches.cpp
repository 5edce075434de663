#include "accel/data/device_batches.h"

#include "accel/ops/ops.h"

namespace accel::data {

// The loader takes uint8 or float32 inputs; its batches are float32 either way.
constexpr DType kBatchDType = DType::Float32;

DeviceBatches::DeviceBatches(const DataLoader& loader, Device device)
    : loader_(loader),
      inputs_(loader.inputs().to(device)),  // uint8 images stay uint8 there: a quarter of the memory
      labels_(loader.labels().to(device)) {}

bool DeviceBatches::batch_into(std::size_t index, Batch& out) {
  const std::int64_t count = loader_.batch_rows(index);
  if (!can_hold_batch(out, count, inputs_, labels_, inputs_.device())) return false;
  if (!order_.defined() || order_version_ != loader_.order_version()) {
    const std::vector<std::int64_t>& order = loader_.order();
    order_ = from_vector<std::int64_t>(order, {static_cast<std::int64_t>(order.size())}).to(inputs_.device());
    order_version_ = loader_.order_version();
  }
  const auto begin = static_cast<std::int64_t>(index) * loader_.batch_size();
  const Tensor rows = order_.slice(0, begin, begin + count);
  take_rows_into(inputs_, rows, out.inputs);
  take_rows_into(labels_, rows, out.labels);
  return true;
}

Batch DeviceBatches::batch(std::size_t index) {
  const std::int64_t count = loader_.batch_rows(index);
  Batch out{empty(with_rows(inputs_, count), kBatchDType, inputs_.device()),
            empty(with_rows(labels_, count), labels_.dtype(), labels_.device())};
  batch_into(index, out);
  return out;
}

std::size_t device_bytes(const DataLoader& loader) {
  const Tensor& x = loader.inputs();
  return static_cast<std::size_t>(x.numel()) * element_size(x.dtype()) +
         static_cast<std::size_t>(loader.labels().numel()) * element_size(loader.labels().dtype());
}

}  // namespace accel::data
