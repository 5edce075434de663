#include "accel/train/sigterm_watch.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "accel/core/error.h"

namespace accel::train {
namespace {

volatile std::sig_atomic_t g_sigterm = 0;

extern "C" void note_sigterm(int) { g_sigterm = 1; }

// Room for the signal frame with the widest register state (AMX tiles: ~11 KB) and the handler.
constexpr std::size_t kStackBytes = 64 * 1024;

}  // namespace

SigtermWatch::SigtermWatch() : stack_(new char[kStackBytes]) {
  g_sigterm = 0;
  stack_t stack{};
  stack.ss_sp = stack_.get();
  stack.ss_size = kStackBytes;
  if (::sigaltstack(&stack, &previous_stack_) != 0) {
    throw Error(std::string("cannot give the SIGTERM handler a stack of its own: ") + std::strerror(errno));
  }
  struct sigaction action {};
  action.sa_handler = note_sigterm;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | SA_ONSTACK;
  if (::sigaction(SIGTERM, &action, &previous_) != 0) {
    const int error = errno;
    ::sigaltstack(&previous_stack_, nullptr);
    throw Error(std::string("cannot watch for SIGTERM: ") + std::strerror(error));
  }
}

SigtermWatch::~SigtermWatch() {
  ::sigaction(SIGTERM, &previous_, nullptr);
  ::sigaltstack(&previous_stack_, nullptr);
}

bool SigtermWatch::requested() const { return g_sigterm != 0; }

}  // namespace accel::train
