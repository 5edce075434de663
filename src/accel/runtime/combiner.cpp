#include "accel/runtime/combiner.h"

#include <vector>

namespace accel::runtime {

void Combiner::run(const std::function<void()>& op) {
  Slot slot;
  slot.op = &op;
  std::unique_lock<std::mutex> lock(mutex_);
  queue_.push_back(&slot);
  while (!slot.done) {
    if (combining_ || !slot.queued) {  // another thread runs or commits this slot's batch
      slot.wake.wait(lock, [&] { return slot.done || (!combining_ && slot.queued); });
      continue;
    }
    // Nobody is running operations: run everything queued, this thread's own included.
    combining_ = true;
    std::vector<Slot*> batch(queue_.begin(), queue_.end());
    queue_.clear();
    for (Slot* s : batch) s->queued = false;
    lock.unlock();
    for (Slot* s : batch) {
      try {
        (*s->op)();
      } catch (...) {
        s->error = std::current_exception();
      }
    }
    // The next batch's operations may run while this one commits (on the other core): its
    // changes queue behind these and its answers wait for its own commit.
    lock.lock();
    combining_ = false;
    if (!queue_.empty()) queue_.front()->wake.notify_one();
    lock.unlock();
    std::exception_ptr commit_error;
    try {
      after_batch_();
    } catch (...) {
      commit_error = std::current_exception();
    }
    lock.lock();
    for (Slot* s : batch) {
      if (!s->error) s->error = commit_error;
      s->done = true;
      if (s != &slot) s->wake.notify_one();
    }
  }
  if (slot.error) std::rethrow_exception(slot.error);
}

}  // namespace accel::runtime
