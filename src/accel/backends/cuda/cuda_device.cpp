#include "accel/backends/cuda/cuda_device.h"

#include <cuda_runtime_api.h>

namespace accel::cuda {
namespace {

struct DeviceQuery {
  cudaError_t status;
  int count;
};

DeviceQuery query() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  return {status, status == cudaSuccess ? count : 0};
}

}  // namespace

int device_count() { return query().count; }

std::string unavailable_reason(int index) {
  const DeviceQuery q = query();
  if (q.status != cudaSuccess) {
    return std::string("no CUDA device: cudaGetDeviceCount returned ") + cudaGetErrorName(q.status) + " (" +
           cudaGetErrorString(q.status) + "); use --device cpu";
  }
  if (q.count == 0) return "no CUDA device: the CUDA runtime sees 0 devices; use --device cpu";
  if (index < 0 || index >= q.count) {
    return "no CUDA device cuda:" + std::to_string(index) + ": this machine has " + std::to_string(q.count) +
           " (cuda:0 to cuda:" + std::to_string(q.count - 1) + ")";
  }
  return {};
}

std::string runtime_version() {
  int version = 0;
  if (cudaRuntimeGetVersion(&version) != cudaSuccess) return "unknown";
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

}  // namespace accel::cuda
