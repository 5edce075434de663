// BatchThread: the loader thread behind BatchPrefetcher and StagedBatches. It makes batches
// first..end-1 in order, each once its owner says there is room for it, and keeps what making
// one threw for the consumer; its owner's state is guarded by the thread's mutex.
//
//   BatchThread thread_{first, end, [&](std::size_t i) { return room_for(i); },   // under the lock
//                       [&](std::size_t i) { auto b = make(i);                     // without it
//                                            return [&, b] { publish(b); }; }};    // under it
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace accel::data {

class BatchThread {
 public:
  using HasRoom = std::function<bool(std::size_t index)>;
  using Make = std::function<std::function<void()>(std::size_t index)>;

  // Starts the thread: declare it after everything `has_room` and `make` use.
  BatchThread(std::size_t first, std::size_t end, HasRoom has_room, Make make)
      : has_room_(std::move(has_room)), make_(std::move(make)), thread_([this, first, end] { run(first, end); }) {}
  ~BatchThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  BatchThread(const BatchThread&) = delete;
  BatchThread& operator=(const BatchThread&) = delete;

  std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(mutex_); }
  // With lock() held: waits until `done` holds or making a batch failed; then rethrows that.
  template <typename Done>
  void wait(std::unique_lock<std::mutex>& lock, Done done) {
    changed_.wait(lock, [&] { return done() || error_; });
    if (!done()) std::rethrow_exception(error_);
  }
  // The owner's state changed (room for a batch): without the lock held.
  void notify() { changed_.notify_all(); }

 private:
  void run(std::size_t first, std::size_t end) {
    for (std::size_t index = first; index < end; ++index) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || has_room_(index); });
        if (stop_) return;
      }
      try {
        const std::function<void()> publish = make_(index);
        std::lock_guard<std::mutex> lock(mutex_);
        publish();
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::current_exception();
        changed_.notify_all();
        return;
      }
      changed_.notify_all();
    }
  }

  HasRoom has_room_;
  Make make_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace accel::data
