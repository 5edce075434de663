#include "accel/data/batch_prefetcher.h"

#include <string>

namespace accel::data {

BatchPrefetcher::BatchPrefetcher(const DataLoader& loader, std::size_t first, std::size_t depth)
    : loader_(loader), next_(first), end_(loader.size()), depth_(depth) {
  if (depth == 0) throw ValueError("BatchPrefetcher: depth must be >= 1");
  thread_ = std::thread([this] { produce(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void BatchPrefetcher::produce() {
  for (std::size_t index = next_; index < end_; ++index) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || ready_.size() < depth_; });
      if (stop_) return;
    }
    try {
      Batch batch = loader_.batch(index, /*parallel=*/false);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.push_back(std::move(batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      changed_.notify_all();
      return;
    }
    changed_.notify_all();
  }
}

Batch BatchPrefetcher::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_ >= end_) {
    throw ValueError("BatchPrefetcher: batch " + std::to_string(next_) + " is past the epoch's " +
                     std::to_string(end_) + " batches");
  }
  changed_.wait(lock, [&] { return !ready_.empty() || error_; });
  if (ready_.empty()) std::rethrow_exception(error_);
  Batch batch = std::move(ready_.front());
  ready_.pop_front();
  ++next_;
  lock.unlock();
  changed_.notify_all();
  return batch;
}

}  // namespace accel::data
