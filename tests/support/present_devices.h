// The devices a backend test runs on: every registered device type whose device 0 is present
// here (cpu and sim always; cuda:0 on a GPU machine, not in a CUDA build without a GPU).
#pragma once

#include <vector>

#include "accel/backends/backend_registry.h"
#include "accel/core/error.h"

namespace accel::testing {

inline std::vector<Device> present_devices() {
  std::vector<Device> out;
  for (DeviceType type : registered_device_types()) {
    try {
      backend_for(Device(type, 0));
      out.emplace_back(type, 0);
    } catch (const DeviceError&) {  // registered but absent
    }
  }
  return out;
}

}  // namespace accel::testing
