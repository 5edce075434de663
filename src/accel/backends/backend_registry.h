// How a backend makes itself known. Each backend folder defines a static BackendRegistration
// (backends/cpu/cpu_registration.cpp, backends/cuda/cuda_registration.cpp); backend_for() looks
// the device's type up here, so adding a backend touches no other backend's file and no list
// in code. CMake links the backends library whole (WHOLE_ARCHIVE), so no registration object
// is dropped by the linker for being unreferenced.
#pragma once

#include <functional>
#include <vector>

#include "accel/backends/backend.h"

namespace accel {

// Returns the backend of device `index` of its type; throws DeviceError (with the reason and
// the fix) when that device cannot be used.
using BackendGetter = std::function<Backend&(int index)>;

struct BackendRegistration {
  BackendRegistration(DeviceType type, BackendGetter getter);
};

// The device types with a registered backend, in registration order ("cpu", "sim", ...).
std::vector<DeviceType> registered_device_types();

}  // namespace accel
