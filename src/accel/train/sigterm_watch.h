// SigtermWatch: while one exists, SIGTERM sets a flag instead of ending the process, so a
// training loop can finish its step and write a checkpoint first (a scheduler sends SIGTERM,
// waits a grace period, then SIGKILLs). The previous disposition comes back when it goes.
//
// The handler runs on an alternate signal stack of the watch's own (SA_ONSTACK): the JIT GEMM
// kernels of oneDNN before 3.12 (Debian 12 ships 2.6) point rsp into the heap while they run
// (oneDNN issue #4845), so a signal frame pushed on "the stack" there overwrites heap memory and
// a later free() aborts. Linux gives a process-directed signal to the main thread first, and the
// alternate stack is installed on the thread that creates the watch: create it on the thread
// that trains (it must also be the one that destroys it).
#pragma once

#include <csignal>
#include <memory>

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
  stack_t previous_stack_{};
  std::unique_ptr<char[]> stack_;
};

}  // namespace accel::train
