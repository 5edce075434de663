#include "accel/hw/cuda_api.h"

#include "accel/core/error.h"
#include "accel/hw/library_versions.h"

namespace accel {

namespace cuda {

bool is_available() { return device_count() > 0; }

int device_count() { return static_cast<int>(hw::query_cuda_runtime().devices.size()); }

hw::CudaDeviceProperties get_device_properties(int device) {
  const hw::CudaRuntimeInfo info = hw::query_cuda_runtime();
  if (device < 0 || device >= static_cast<int>(info.devices.size())) {
    throw DeviceError("get_device_properties: no CUDA device " + std::to_string(device) + " (this machine has " +
                      std::to_string(info.devices.size()) + (info.error.empty() ? ")" : "; " + info.error + ")"));
  }
  return info.devices[static_cast<std::size_t>(device)];
}

std::string get_device_name(int device) { return get_device_properties(device).name; }

}  // namespace cuda

namespace version {

std::optional<std::string> cuda() {
  const hw::CudaRuntimeInfo info = hw::query_cuda_runtime();
  if (!info.built_with_cuda || info.runtime_version.empty()) return std::nullopt;
  return info.runtime_version;
}

std::optional<std::string> cudnn() {
  const hw::LibraryVersion v = hw::query_library_versions().cudnn;
  if (!v.found || v.version.empty()) return std::nullopt;
  return v.version;
}

}  // namespace version

namespace backends::cudnn {

bool is_available() { return hw::query_cuda_runtime().built_with_cuda && hw::query_library_versions().cudnn.found; }

}  // namespace backends::cudnn

}  // namespace accel
