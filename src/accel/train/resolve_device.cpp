#include "accel/train/resolve_device.h"

#include <cstdlib>

#include "accel/backends/backend.h"
#include "accel/core/error.h"

namespace accel::train {

Device resolve_device(const std::string& spec, std::string* note) {
  // Inside a runtime of `accel serve`, "auto" means the runtime's lease (ACCEL_DEVICE).
  if (const char* leased = std::getenv("ACCEL_DEVICE"); spec == "auto" && leased && *leased) {
    const Device device(leased);
    backend_for(device);
    if (note) *note = std::string("auto: using ") + device.describe() + " from ACCEL_DEVICE (the runtime's lease)";
    return device;
  }
  if (spec != "auto") {
    const Device device(spec);
    backend_for(device);  // throws DeviceError with the reason when it cannot be used
    return device;
  }
  try {
    backend_for(Device(DeviceType::CUDA, 0));
    if (note) *note = "auto: using cuda:0";
    return Device(DeviceType::CUDA, 0);
  } catch (const DeviceError& e) {
    if (note) *note = std::string("auto: using cpu (") + e.what() + ")";
    return kCPU;
  }
}

std::string leased_device_spec(const std::string& spec) {
  const char* leased = std::getenv("ACCEL_DEVICE");
  return spec == "auto" && leased && *leased ? std::string(leased) : spec;
}

}  // namespace accel::train
