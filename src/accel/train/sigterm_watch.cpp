#include "accel/train/sigterm_watch.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "accel/core/error.h"

namespace accel::train {
namespace {

volatile std::sig_atomic_t g_sigterm = 0;

extern "C" void note_sigterm(int) { g_sigterm = 1; }

}  // namespace

SigtermWatch::SigtermWatch() {
  g_sigterm = 0;
  struct sigaction action {};
  action.sa_handler = note_sigterm;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (::sigaction(SIGTERM, &action, &previous_) != 0) {
    throw Error(std::string("cannot watch for SIGTERM: ") + std::strerror(errno));
  }
}

SigtermWatch::~SigtermWatch() { ::sigaction(SIGTERM, &previous_, nullptr); }

bool SigtermWatch::requested() const { return g_sigterm != 0; }

}  // namespace accel::train
