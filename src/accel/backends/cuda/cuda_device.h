// CUDA device discovery through the CUDA runtime. Built only where the toolkit was found.
// On a machine without a GPU every call answers plainly instead of failing.
#pragma once

#include <string>

namespace accel::cuda {

// Number of visible CUDA devices; 0 when there is no driver or no device.
int device_count();

// Empty when device `index` can be used; otherwise why not, in words a user can act on
// ("no CUDA device: cudaGetDeviceCount returned cudaErrorNoDevice (no CUDA-capable device is
// detected)").
std::string unavailable_reason(int index);

// The CUDA runtime version this build was linked against, e.g. "13.0".
std::string runtime_version();

}  // namespace accel::cuda
