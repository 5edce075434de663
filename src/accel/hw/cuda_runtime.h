// What the CUDA runtime says, when accel is built with the CUDA toolkit: runtime and driver
// versions and each device's properties. Without a GPU (or a build without CUDA) the result
// says why, and nothing throws.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace accel::hw {

struct CudaDeviceProperties {  // the fields of torch.cuda.get_device_properties a user reads
  std::string name;
  std::uint64_t total_memory = 0;  // bytes
  int major = 0;
  int minor = 0;
  int multi_processor_count = 0;
};

struct CudaRuntimeInfo {
  bool built_with_cuda = false;
  std::string runtime_version;  // the runtime linked into accel, "13.0"
  std::string driver_version;   // the CUDA version the installed driver supports, or ""
  std::string error;            // why there are no devices: "cudaErrorInsufficientDriver (...)"
  std::vector<CudaDeviceProperties> devices;
};

CudaRuntimeInfo query_cuda_runtime();

// Empty when CUDA device `index` can be used; otherwise why not, for a DeviceError:
// "no CUDA device: cudaGetDeviceCount returned cudaErrorNoDevice (...); use --device cpu".
std::string cuda_unavailable_reason(int index);

}  // namespace accel::hw
