// Built when the CUDA toolkit is found (the static runtime is linked, so the binary runs where
// no CUDA libraries are installed). cuda_runtime_stub.cpp stands in otherwise.
#include "accel/hw/cuda_runtime.h"

#include <cuda_runtime_api.h>

namespace accel::hw {
namespace {

std::string version_string(int version) {
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

std::string describe(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")";
}

}  // namespace

CudaRuntimeInfo query_cuda_runtime() {
  CudaRuntimeInfo info;
  info.built_with_cuda = true;
  int version = 0;
  if (cudaRuntimeGetVersion(&version) == cudaSuccess) info.runtime_version = version_string(version);
  if (cudaDriverGetVersion(&version) == cudaSuccess && version > 0) info.driver_version = version_string(version);
  int count = 0;
  if (const cudaError_t status = cudaGetDeviceCount(&count); status != cudaSuccess) {
    info.error = "cudaGetDeviceCount returned " + describe(status);
    return info;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (const cudaError_t status = cudaGetDeviceProperties(&prop, i); status != cudaSuccess) {
      info.error = "cudaGetDeviceProperties(" + std::to_string(i) + ") returned " + describe(status);
      continue;
    }
    info.devices.push_back({prop.name, prop.totalGlobalMem, prop.major, prop.minor, prop.multiProcessorCount});
  }
  return info;
}

std::string cuda_unavailable_reason(int index) {
  int count = 0;
  if (const cudaError_t status = cudaGetDeviceCount(&count); status != cudaSuccess) {
    return "no CUDA device: cudaGetDeviceCount returned " + describe(status) + "; use --device cpu";
  }
  if (count == 0) return "no CUDA device: the CUDA runtime sees 0 devices; use --device cpu";
  if (index < 0 || index >= count) {
    return "no CUDA device cuda:" + std::to_string(index) + ": this machine has " + std::to_string(count) +
           " (cuda:0 to cuda:" + std::to_string(count - 1) + ")";
  }
  return {};
}

}  // namespace accel::hw
