#include "accel/backends/backend_registry.h"

#include <map>
#include <mutex>
#include <string>

#include "accel/backends/kernel_recording.h"
#include "accel/core/error.h"

namespace accel {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<DeviceType, BackendGetter> getters;
  std::vector<DeviceType> order;
};

Registry& registry() {
  static auto* instance = new Registry();  // never destroyed: tensors may be freed after main
  return *instance;
}

std::string type_name(DeviceType type) {
  const std::string name = Device(type, 0).to_string();
  return name.substr(0, name.find(':'));
}

}  // namespace

BackendRegistration::BackendRegistration(DeviceType type, BackendGetter getter) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.getters.emplace(type, std::move(getter)).second) r.order.push_back(type);
}

std::vector<DeviceType> registered_device_types() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.order;
}

Backend& backend_for(Device device) {
  if (Backend* recorder = capture_backend_for(device)) return *recorder;  // capturing: record the calls
  BackendGetter getter;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    if (auto it = r.getters.find(device.type); it != r.getters.end()) getter = it->second;
  }
  if (!getter) {
    std::string built;
    for (DeviceType type : registered_device_types()) built += (built.empty() ? "" : ", ") + type_name(type);
    throw DeviceError("device " + device.to_string() + " cannot be used: this build of accel has no " +
                      type_name(device.type) + " backend (built: " + built +
                      "); use --device cpu, or rebuild accel where that device's toolkit is installed (CUDA: nvcc "
                      "found at configure time)");
  }
  return getter(device.index);
}

}  // namespace accel
