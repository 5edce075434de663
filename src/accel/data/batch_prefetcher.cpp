#include "accel/data/batch_prefetcher.h"

#include <string>

namespace accel::data {

BatchPrefetcher::BatchPrefetcher(const DataLoader& loader, std::size_t first, std::size_t depth)
    : loader_(loader), next_(first), end_(loader.size()), depth_(depth) {
  if (depth == 0) throw ValueError("BatchPrefetcher: depth must be >= 1");
  thread_.emplace(
      first, end_, [this](std::size_t) { return ready_.size() < depth_; },
      [this](std::size_t index) -> std::function<void()> {
        return [this, batch = loader_.batch(index, /*parallel=*/false)] { ready_.push_back(batch); };
      });
}

Batch BatchPrefetcher::next() {
  if (next_ >= end_) {
    throw ValueError("BatchPrefetcher: batch " + std::to_string(next_) + " is past the epoch's " +
                     std::to_string(end_) + " batches");
  }
  auto lock = thread_->lock();
  thread_->wait(lock, [&] { return !ready_.empty(); });
  Batch batch = std::move(ready_.front());
  ready_.pop_front();
  ++next_;
  lock.unlock();
  thread_->notify();
  return batch;
}

}  // namespace accel::data
