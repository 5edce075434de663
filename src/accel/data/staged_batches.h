// StagedBatches: a DataLoader's batches on a device that does not hold the whole data set
// (where data/device_batches.h would not fit). A loader thread writes each batch's rows as the
// data set stores them (uint8 images stay uint8: a quarter of the bytes of float32) into
// pinned host buffers, up to `depth` batches ahead, and makes no device call. next() copies a
// batch's buffers to the device on the backend's copy stream, where the copy overlaps the steps
// still queued on the default stream, and one gather kernel per tensor on the default stream
// turns them into the batch (pixels / 255 as the host loader does: its batches bit for bit).
//
//   for (epoch ...) {
//     data::StagedBatches batches(loader, device, 0, 3);
//     for (i ...) step(batches.next(step_inputs));
//     loader.next_epoch();  // after `batches` is gone: its thread reads the order
//   }
//
// A slot (pinned buffers, device buffers) is reused once the device is done with it: its
// copy waits on the device for the gather that last read its device buffers, and the loader
// gets it back once the copy that last read its pinned buffers has finished.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "accel/backends/backend.h"
#include "accel/data/batch_thread.h"
#include "accel/data/dataloader.h"

namespace accel::data {

class StagedBatches {
 public:
  // Batches first..loader.size() - 1 of the loader's current order, on `device`. `loader` must
  // outlive this and keep its order while it runs. depth >= 1.
  StagedBatches(const DataLoader& loader, Device device, std::size_t first, std::size_t depth);
  // The same with the device's backend given (a test's wrapper around it).
  StagedBatches(const DataLoader& loader, Backend& backend, std::size_t first, std::size_t depth);
  ~StagedBatches();  // stops the thread and waits for the copies in flight
  StagedBatches(const StagedBatches&) = delete;
  StagedBatches& operator=(const StagedBatches&) = delete;

  // The next batch on the device: written into `buffers` when they are contiguous tensors on
  // the device of exactly its shapes and dtypes (a captured step's inputs), else into new
  // tensors. Rethrows what the loader thread threw; ValueError past the epoch's end. After a
  // device call failed (out of memory), the next call tries the same batch again.
  Batch next(const Batch& buffers = {});

 private:
  class PinnedBuffer {
   public:
    PinnedBuffer(Backend& backend, std::size_t bytes);
    ~PinnedBuffer();
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    void* data() const { return ptr_; }

   private:
    Backend& backend_;
    std::size_t bytes_;
    void* ptr_;
  };
  enum class SlotState { Free, Filled, Copying };  // Free: the loader's; otherwise next()'s
  struct Slot {
    Slot(Backend& backend, const DataLoader& loader);
    PinnedBuffer inputs, labels;            // host: the loader thread writes them
    Tensor device_inputs, device_labels;    // the copies' destinations, as stored
    SlotState state = SlotState::Free;      // guarded by mutex_
    std::int64_t rows = 0;                  // in the batch filled
    std::optional<Event> copied, consumed;  // the last copy from it, the last gather from it
  };

  Slot& slot_of(std::size_t index) { return *slots_[index % slots_.size()]; }
  // Gives the loader back the slots whose copies are done: the oldest at least when `wait`.
  void reclaim(bool wait);
  void replace_event(std::optional<Event>& slot_event, const Event& recorded);

  const DataLoader& loader_;
  Backend& backend_;
  std::size_t next_, end_;
  std::vector<std::unique_ptr<Slot>> slots_;  // batch k uses slot k % depth
  std::deque<Slot*> copying_;                 // next()'s, oldest copy first
  Tensor row_order_;                          // 0, 1, ..., batch_size - 1 on the device
  std::optional<BatchThread> thread_;         // started last; its mutex guards the slots' states
};

}  // namespace accel::data
