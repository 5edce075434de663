// DeviceMemory for a CUDA device: cudaMalloc/cudaFree, cudaMemGetInfo, events for cross-stream
// reuse. Defined in CUDA builds only (backends/cuda/cuda_memory.cpp).
#pragma once

#include <memory>

#include "accel/memory/device_memory.h"

namespace accel::memory {

std::unique_ptr<DeviceMemory> make_cuda_memory(int device);

}  // namespace accel::memory
