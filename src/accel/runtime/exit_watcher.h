// ExitWatcher: calls back when a watched process exits, within milliseconds, so the service
// sees a job end when it ends instead of on its next tick (1 s by default). One thread waits on
// the processes' pidfds with epoll; a pidfd works for any process, also a job monitor adopted
// after a restart of the service (not its child). Where pidfd_open is missing (Linux < 5.3) it
// watches nothing and the tick alone notices exits.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

namespace accel::runtime {

class ExitWatcher {
 public:
  explicit ExitWatcher(std::function<void()> on_exit);
  ~ExitWatcher();
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

  void watch(int pid);

 private:
  std::function<void()> on_exit_;
  int epoll_ = -1;
  std::mutex fds_mutex_;
  std::set<int> fds_;  // pidfds in the epoll set, closed when their process exits or at the end
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace accel::runtime
