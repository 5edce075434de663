// SigtermWatch: while one exists, SIGTERM sets a flag instead of ending the process, so a
// training loop can finish its step and write a checkpoint first (a scheduler sends SIGTERM,
// waits a grace period, then SIGKILLs). The previous disposition comes back when it goes.
#pragma once

#include <csignal>

namespace accel::train {

class SigtermWatch {
 public:
  SigtermWatch();
  ~SigtermWatch();
  SigtermWatch(const SigtermWatch&) = delete;
  SigtermWatch& operator=(const SigtermWatch&) = delete;
  // Whether SIGTERM arrived since this watch began.
  bool requested() const;

 private:
  struct sigaction previous_ {};
};

}  // namespace accel::train
