// The CUDA device type in a build with the CUDA toolkit: its memory (cudaMalloc under the
// caching allocator) and its backend. The tensor kernels arrive with the CUDA backend issue;
// until then a present GPU is reported as such, with the way out.
#include <string>

#include "accel/backends/backend_registry.h"
#include "accel/backends/cuda/cuda_memory.h"
#include "accel/core/error.h"
#include "accel/hw/cuda_runtime.h"  // cuda_unavailable_reason
#include "accel/memory/device_memory_registry.h"

namespace accel::cuda_backend {
namespace {

void require_device(int index) {
  const std::string reason = hw::cuda_unavailable_reason(index);
  if (!reason.empty()) throw DeviceError(reason);
}

const memory::DeviceMemoryRegistration memory_registration(DeviceType::CUDA, [](int index) {
  require_device(index);
  return memory::make_cuda_memory(index);
});

const BackendRegistration backend_registration(DeviceType::CUDA, [](int index) -> Backend& {
  require_device(index);
  throw DeviceError("device cuda:" + std::to_string(index) +
                    " is present, but this build's CUDA backend has no tensor kernels yet (the CUDA backend issue "
                    "adds them); use --device cpu");
});

}  // namespace
}  // namespace accel::cuda_backend
