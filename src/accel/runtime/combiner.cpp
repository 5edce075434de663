#include "accel/runtime/combiner.h"

#include <vector>

namespace accel::runtime {

void Combiner::run(const std::function<void()>& op) {
  Slot slot;
  slot.op = &op;
  std::unique_lock<std::mutex> lock(mutex_);
  queue_.push_back(&slot);
  while (!slot.done) {
    if (combining_) {
      slot.wake.wait(lock, [&] { return slot.done || !combining_; });
      continue;
    }
    // Nobody is combining: run everything queued, this thread's own operation included.
    combining_ = true;
    std::vector<Slot*> batch(queue_.begin(), queue_.end());
    queue_.clear();
    lock.unlock();
    for (Slot* s : batch) {
      try {
        (*s->op)();
      } catch (...) {
        s->error = std::current_exception();
      }
    }
    std::exception_ptr commit_error;
    try {
      after_batch_();
    } catch (...) {
      commit_error = std::current_exception();
    }
    lock.lock();
    combining_ = false;
    for (Slot* s : batch) {
      if (!s->error) s->error = commit_error;
      s->done = true;
      if (s != &slot) s->wake.notify_one();
    }
    // Operations that arrived during the batch: the oldest one's thread runs the next batch.
    if (!queue_.empty()) queue_.front()->wake.notify_one();
  }
  if (slot.error) std::rethrow_exception(slot.error);
}

}  // namespace accel::runtime
