// The CUDA runtime queries of a build without the CUDA toolkit: they say so.
#include "accel/hw/cuda_runtime.h"

namespace accel::hw {

CudaRuntimeInfo query_cuda_runtime() {
  CudaRuntimeInfo info;
  info.error = "this build of accel has no CUDA support (the CUDA toolkit was not found when it was configured)";
  return info;
}

std::string cuda_unavailable_reason(int index) {
  return "no CUDA device for cuda:" + std::to_string(index) +
         ": this build of accel has no CUDA backend (the CUDA toolkit was not found at configure time); use device "
         "cpu, or rebuild where nvcc is installed";
}

}  // namespace accel::hw
