// BatchPrefetcher: a background thread that assembles a DataLoader's batches first..end in
// order, up to `depth` ahead of the consumer, so gathering rows and copying them to a device
// overlap the training step instead of preceding it (PyTorch's DataLoader workers with
// prefetch_factor, in one thread). Gathering on that thread is serial: an OpenMP team of its
// own would compete with the step's threads.
//
//   for (epoch ...) {
//     data::BatchPrefetcher batches(loader, 0, 2);
//     for (std::size_t i = 0; i < loader.size(); ++i) step(batches.next());
//     loader.next_epoch();  // after the prefetcher is gone: it reads the order
//   }
#pragma once

#include <cstddef>
#include <deque>
#include <optional>

#include "accel/data/batch_thread.h"
#include "accel/data/dataloader.h"

namespace accel::data {

class BatchPrefetcher {
 public:
  // `loader` must outlive this and keep its order while it runs. depth >= 1.
  BatchPrefetcher(const DataLoader& loader, std::size_t first, std::size_t depth);
  // Destroying it stops the thread and waits for it.
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // The next batch in order; rethrows what assembling it threw. ValueError past the end.
  Batch next();

 private:
  const DataLoader& loader_;
  std::size_t next_, end_, depth_;
  std::deque<Batch> ready_;            // guarded by the thread's mutex
  std::optional<BatchThread> thread_;  // last: started once everything above exists
};

}  // namespace accel::data
