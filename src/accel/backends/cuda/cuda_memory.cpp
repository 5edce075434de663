#include "accel/backends/cuda/cuda_memory.h"

#include <cuda_runtime_api.h>

#include "accel/backends/cuda/cuda_check.h"
#include "accel/core/error.h"

namespace accel::memory {
namespace {

using cuda_backend::DeviceGuard;

class CudaMemory final : public DeviceMemory {
 public:
  explicit CudaMemory(int device) : device_(device) {
    DeviceGuard guard(device_);
    std::size_t free = 0;
    ACCEL_CUDA_CHECK(cudaMemGetInfo(&free, &total_));
  }

  void* raw_allocate(std::size_t bytes) override {
    DeviceGuard guard(device_);
    void* ptr = nullptr;
    if (cudaMalloc(&ptr, bytes) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky-free error so later calls are unaffected
      return nullptr;
    }
    return ptr;
  }

  void raw_free(void* ptr, std::size_t) override {
    DeviceGuard guard(device_);
    ACCEL_CUDA_CHECK(cudaFree(ptr));
  }

  std::size_t total_memory() const override { return total_; }

  std::size_t free_memory() const override {
    DeviceGuard guard(device_);
    std::size_t free = 0, total = 0;
    ACCEL_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return free;
  }

  void synchronize() override {
    DeviceGuard guard(device_);
    ACCEL_CUDA_CHECK(cudaDeviceSynchronize());
  }

  EventId record_event(StreamId stream) override {
    DeviceGuard guard(device_);
    cudaEvent_t event = nullptr;
    ACCEL_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    ACCEL_CUDA_CHECK(cudaEventRecord(event, reinterpret_cast<cudaStream_t>(stream)));
    return reinterpret_cast<EventId>(event);
  }

  bool event_done(EventId event) override {
    const cudaError_t status = cudaEventQuery(reinterpret_cast<cudaEvent_t>(event));
    if (status == cudaErrorNotReady) {
      cudaGetLastError();
      return false;
    }
    ACCEL_CUDA_CHECK(status);
    return true;
  }

  void release_event(EventId event) override { cudaEventDestroy(reinterpret_cast<cudaEvent_t>(event)); }

  std::string name() const override { return "cuda:" + std::to_string(device_); }
  bool simulated() const override { return false; }

 private:
  int device_;
  std::size_t total_ = 0;
};

}  // namespace

std::unique_ptr<DeviceMemory> make_cuda_memory(int device) { return std::make_unique<CudaMemory>(device); }

}  // namespace accel::memory
