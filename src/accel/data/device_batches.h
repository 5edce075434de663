// DeviceBatches: a DataLoader's whole data set kept on a device, each batch gathered there by
// one kernel (take_rows_into) into buffers on that device (a captured step's inputs): no host
// gather and no host-to-device copy per step (a copy from pageable memory would also wait for
// the device): the epoch's order goes to the device once, and a batch's rows are a view of it.
// The order stays the loader's, so the batches are the ones the host path makes.
//
//   data::DeviceBatches batches(loader, Device("cuda:0"));   // OutOfMemoryError if it does not fit
//   for (i ...) if (!batches.batch_into(i, step_inputs)) ...   // the host path
#pragma once

#include "accel/data/dataloader.h"

namespace accel::data {

class DeviceBatches {
 public:
  // Copies the loader's inputs (uint8 images as they are: a batch's pixels become float32 / 255,
  // the loader's batches bit for bit, as they are gathered) and labels to `device`. Throws
  // OutOfMemoryError when the device cannot hold them.
  DeviceBatches(const DataLoader& loader, Device device);

  // Batch `index` of the loader's current order, written into out's tensors: true when they
  // are contiguous tensors on this device of exactly the batch's shapes and dtypes (else
  // false, and out is left alone: a short last batch, say).
  bool batch_into(std::size_t index, Batch& out);

  // The same batch in new tensors on the device (eager steps, a short last batch).
  Batch batch(std::size_t index);

 private:
  const DataLoader& loader_;
  Tensor inputs_, labels_;  // on the device
  Tensor order_;            // the loader's order on the device, as of order_version_
  std::uint64_t order_version_ = 0;
};

// What DeviceBatches would take on the device for this loader's data set.
std::size_t device_bytes(const DataLoader& loader);

}  // namespace accel::data
