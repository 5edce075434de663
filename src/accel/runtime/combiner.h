// Flat combining: request threads hand their operation to whichever thread is running a batch;
// when none is, the first waiting thread runs every queued operation in arrival order, then
// `after_batch` (the store's group commit) once for all of them, then wakes their threads. The
// next batch's operations may run while a batch commits; `after_batch` must order commits
// itself (Store::sync does).
//
// Why: under 100 concurrent clients on 2 cores, a mutex let newly arrived requests overtake
// sleeping ones (p99 three times the median), and a separate commit thread waited behind the
// request threads for the CPU. Here operations run first come, first served, and each batch is
// one transaction committed by a thread that is already running.
//
//   Combiner combiner([&] { store.sync(); });
//   combiner.run([&] { answer = service.create(user, body); });  // rethrows what it threw
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>

namespace accel::runtime {

class Combiner {
 public:
  explicit Combiner(std::function<void()> after_batch) : after_batch_(std::move(after_batch)) {}

  // Returns once `op` ran and the batch it ran in was committed; rethrows op's exception, or
  // after_batch's (the commit failed) if op succeeded.
  void run(const std::function<void()>& op);

 private:
  struct Slot {
    const std::function<void()>* op;
    std::exception_ptr error;
    bool queued = true;  // not yet taken into a batch
    bool done = false;
    std::condition_variable wake;
  };

  std::function<void()> after_batch_;
  std::mutex mutex_;
  std::deque<Slot*> queue_;
  bool combining_ = false;
};

}  // namespace accel::runtime
