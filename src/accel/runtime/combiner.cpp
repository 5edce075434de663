#include "accel/runtime/combiner.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <iterator>

namespace accel::runtime {

Combiner::Combiner(std::function<void()> after_batch)
    : after_batch_(std::move(after_batch)), thread_([this] { loop(); }) {}

Combiner::~Combiner() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  queued_.notify_one();
  thread_.join();
}

void Combiner::submit(std::function<void()> op, Done done) {
  bool was_empty = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    was_empty = queue_.empty();
    queue_.push_back({std::move(op), std::move(done)});
  }
  // Only an empty queue can have the thread asleep: under load it is busy, and queuing costs
  // no system call.
  if (was_empty) queued_.notify_one();
}

void Combiner::run(const std::function<void()>& op) {
  std::promise<void> outcome;
  submit([&op] { op(); },
         [&outcome](std::exception_ptr error) {
           if (error) {
             outcome.set_exception(error);
           } else {
             outcome.set_value();
           }
         });
  outcome.get_future().get();
}

void Combiner::loop() {
  pthread_setname_np(pthread_self(), "accel-combiner");  // named in top -H and perf
  std::vector<Entry> batch;
  std::vector<std::exception_ptr> errors;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      queued_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      // At most kMaxBatch: one transaction stays small, whatever the number of connections.
      const std::size_t taken = std::min(queue_.size(), kMaxBatch);
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + taken));
      queue_.erase(queue_.begin(), queue_.begin() + taken);
    }
    errors.assign(batch.size(), nullptr);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      try {
        batch[i].op();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
    std::exception_ptr commit_error;
    try {
      after_batch_();
    } catch (...) {
      commit_error = std::current_exception();
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      try {
        batch[i].done(errors[i] ? errors[i] : commit_error);
      } catch (const std::exception& e) {  // a broken `done` must not end the thread every state route needs
        std::fprintf(stderr, "accel serve: internal error answering a request: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "accel serve: internal error answering a request\n");
      }
    }
    batch.clear();
  }
}

}  // namespace accel::runtime
