// The device queries a PyTorch user reaches for first, with the names they already know:
//
//   if (accel::cuda::is_available()) {
//     std::cout << accel::cuda::get_device_name(0) << " "
//               << accel::cuda::get_device_properties(0).total_memory / 1e9 << " GB\n";
//   }
//   std::cout << accel::version::cuda().value_or("none");
//
// All of them answer on machines without a GPU (is_available() is false, versions are empty);
// only asking for a device that does not exist throws DeviceError.
#pragma once

#include <optional>
#include <string>

#include "accel/hw/cuda_runtime.h"

namespace accel::cuda {

bool is_available();
int device_count();
std::string get_device_name(int device = 0);
hw::CudaDeviceProperties get_device_properties(int device = 0);

}  // namespace accel::cuda

namespace accel::version {

// The CUDA runtime accel was built with ("13.0"), or none for a CPU-only build (torch.version.cuda).
std::optional<std::string> cuda();
// The cuDNN library found on this machine ("9.13.0"), or none.
std::optional<std::string> cudnn();

}  // namespace accel::version

namespace accel::backends::cudnn {

// cuDNN can be used: this build has CUDA and the library is installed.
bool is_available();

}  // namespace accel::backends::cudnn
