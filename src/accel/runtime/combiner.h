// The combiner: state operations queue here and one thread of its own runs them in arrival order,
// in batches: every operation queued, then `after_batch` (the store's group commit) once for
// all of them, then each operation's `done` with its outcome. Nobody waits for it: the HTTP
// event loop queues an operation and goes on, and `done` hands the answer back to the loop.
//
// Why: under 100 concurrent clients on 2 cores, a mutex let newly arrived requests overtake
// sleeping ones (p99 three times the median), and a separate commit thread waited behind the
// request threads for the CPU. Flat combining on the request threads (the previous design) fixed
// both, but cost each request two thread hops (the loop to a worker, the worker to the batch's
// thread and back), each a futex wake-up that a virtual machine makes expensive. Here a batch
// costs one wake-up, and a request none of its own (docs/performance.md).
//
//   Combiner combiner([&] { store.sync(); });
//   combiner.submit([&] { answer = service.create(user, body); },
//                   [](std::exception_ptr error) { /* op's error, else the commit's, else null */ });
//   combiner.run([&] { ... });  // the same, waiting for the outcome; rethrows it
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace accel::runtime {

class Combiner {
 public:
  using Done = std::function<void(std::exception_ptr)>;

  explicit Combiner(std::function<void()> after_batch);
  // Runs and commits what is still queued, then ends the thread.
  ~Combiner();
  Combiner(const Combiner&) = delete;
  Combiner& operator=(const Combiner&) = delete;

  // Queues `op`; returns at once. On the combiner's thread, once op ran and its batch was
  // committed, `done` gets op's exception, or after_batch's (the commit failed) if op succeeded,
  // or null. `done` must be quick and must not throw: it runs before the next batch.
  void submit(std::function<void()> op, Done done);
  // submit() and wait: rethrows what done would get. Never from the combiner's own thread.
  void run(const std::function<void()>& op);

 private:
  struct Entry {
    std::function<void()> op;
    Done done;
  };
  void loop();
  static constexpr std::size_t kMaxBatch = 1024;

  std::function<void()> after_batch_;
  std::mutex mutex_;
  std::condition_variable queued_;
  std::vector<Entry> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the members it uses exist
};

}  // namespace accel::runtime
