// The niceness a job started with a tier's nice increment gets under this process: the
// increment adds to the service's own, which the suite inherits (it may run under nice).
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <string>

namespace accel::testing {

inline std::string niced(int increment) {
  return std::to_string(std::min(19, getpriority(PRIO_PROCESS, 0) + increment));
}

}  // namespace accel::testing
