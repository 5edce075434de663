// ACCEL_CUDA_CHECK: a CUDA runtime call that must not fail; a failure becomes a DeviceError
// naming the call, the CUDA error and the place. DeviceGuard makes a device current for a scope.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "accel/core/error.h"

#define ACCEL_CUDA_CHECK(call)                                                                                       \
  do {                                                                                                               \
    const cudaError_t status_ = (call);                                                                              \
    if (status_ != cudaSuccess) {                                                                                    \
      throw ::accel::DeviceError(std::string(#call) + " failed: " + cudaGetErrorName(status_) + " (" +               \
                                 cudaGetErrorString(status_) + ") at " + __FILE__ + ":" + std::to_string(__LINE__)); \
    }                                                                                                                \
  } while (0)

namespace accel::cuda_backend {

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    cudaGetDevice(&previous_);
    if (previous_ != device) ACCEL_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() {
    int current = previous_;
    cudaGetDevice(&current);
    if (current != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace accel::cuda_backend
