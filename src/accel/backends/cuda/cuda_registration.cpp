// The CUDA device type in a build with the CUDA toolkit: its memory (cudaMalloc under the
// caching allocator) and its backend (cuda_backend.h), one per device, made on first use.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "accel/backends/backend_registry.h"
#include "accel/backends/cuda/cuda_backend.h"
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

CudaBackend& cuda_backend(int index) {
  static std::mutex mutex;
  // Never destroyed, as the allocators: tensors freed at exit still reach their backend.
  static auto* backends = new std::map<int, std::unique_ptr<CudaBackend>>();
  std::lock_guard lock(mutex);
  auto& slot = (*backends)[index];
  if (!slot) {
    // Checked once per device: backend_for runs for every op.
    try {
      require_device(index);
    } catch (...) {
      backends->erase(index);
      throw;
    }
    slot = std::make_unique<CudaBackend>(index);
  }
  return *slot;
}

const memory::DeviceMemoryRegistration memory_registration(DeviceType::CUDA, [](int index) {
  require_device(index);
  return memory::make_cuda_memory(index);
});

const BackendRegistration backend_registration(DeviceType::CUDA,
                                               [](int index) -> Backend& { return cuda_backend(index); });

}  // namespace
}  // namespace accel::cuda_backend
