#include "accel/runtime/exit_watcher.h"

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace accel::runtime {

ExitWatcher::ExitWatcher(std::function<void()> on_exit) : on_exit_(std::move(on_exit)) {
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) return;
  thread_ = std::thread([this] {
    epoll_event events[64];
    while (!stopping_) {
      const int n = epoll_wait(epoll_, events, 64, 200);  // wakes to see stopping_
      for (int i = 0; i < n; ++i) {
        epoll_ctl(epoll_, EPOLL_CTL_DEL, events[i].data.fd, nullptr);
        std::lock_guard<std::mutex> lock(fds_mutex_);
        fds_.erase(events[i].data.fd);
        close(events[i].data.fd);
      }
      if (n > 0) on_exit_();
    }
  });
}

ExitWatcher::~ExitWatcher() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  for (int fd : fds_) close(fd);
  if (epoll_ >= 0) close(epoll_);
}

void ExitWatcher::watch(int pid) {
  if (epoll_ < 0 || pid <= 0) return;
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return;  // gone already (the tick sees it) or no pidfd on this kernel
  epoll_event event{};
  event.events = EPOLLIN;  // readable once the process has exited
  event.data.fd = fd;
  std::lock_guard<std::mutex> lock(fds_mutex_);
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) {
    close(fd);
    return;
  }
  fds_.insert(fd);
}

}  // namespace accel::runtime
