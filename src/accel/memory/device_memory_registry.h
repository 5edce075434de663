// Where a device type's memory comes from, for its caching allocator: a backend folder
// registers a factory (backends/cuda/ registers cudaMalloc-backed memory), so memory/ names no
// backend. Sim devices' simulated memory belongs to memory/ itself (device_allocators.cpp).
#pragma once

#include <functional>
#include <memory>

#include "accel/core/device.h"
#include "accel/memory/device_memory.h"

namespace accel::memory {

// Makes the memory of device `index`; throws DeviceError (with the reason and the fix) when
// that device cannot be used.
using DeviceMemoryFactory = std::function<std::unique_ptr<DeviceMemory>(int index)>;

struct DeviceMemoryRegistration {
  DeviceMemoryRegistration(DeviceType type, DeviceMemoryFactory factory);
};

}  // namespace accel::memory
