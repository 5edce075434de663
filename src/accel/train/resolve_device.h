// Which device "auto" means: the runtime's lease inside `accel serve` (ACCEL_DEVICE), else CUDA
// when a usable device exists, else the CPU. Named devices are checked (DeviceError with why).
#pragma once

#include <string>

#include "accel/core/device.h"

namespace accel::train {

// `note` (optional) says why "auto" chose what it chose.
Device resolve_device(const std::string& spec, std::string* note = nullptr);

// "auto" inside a runtime: the lease's ACCEL_DEVICE, which may name an XLA device ("xla", "tpu")
// that resolve_device does not take; any other spec as it is.
std::string leased_device_spec(const std::string& spec);

}  // namespace accel::train
