// The caching allocator of each sim and CUDA device, created on first use, and the
// PyTorch-named memory API over it:
//
//   accel::cuda::memory_allocated(0), memory_reserved, max_memory_allocated, ...
//   accel::memory::memory_allocated(Device("sim")), ...  (the same for any device)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "accel/core/device.h"
#include "accel/memory/caching_allocator.h"

namespace accel::memory {

// The device's caching allocator. Throws DeviceError for the CPU (host memory has its own
// accounting: host_allocator().stats()) and for CUDA devices that are not available.
CachingAllocator& caching_allocator(Device device);

// Capacity of sim devices created after this call (default: ACCEL_SIM_MEMORY, a byte count with
// an optional K/M/G suffix, else 16 GiB, a T4's size). Throws ValueError once that device exists.
void set_simulated_device_capacity(int index, std::size_t bytes);

std::int64_t memory_allocated(Device device);
std::int64_t memory_reserved(Device device);
std::int64_t max_memory_allocated(Device device);
std::int64_t max_memory_reserved(Device device);
void reset_peak_memory_stats(Device device);
std::map<std::string, std::int64_t> memory_stats(Device device);
std::string memory_summary(Device device);
// Releases the cached, fully free segments of `device` (see CachingAllocator::empty_cache:
// memory that tensors still hold is not freed).
void empty_cache(Device device);
void set_per_process_memory_fraction(double fraction, Device device);
std::pair<std::size_t, std::size_t> mem_get_info(Device device);  // {free, total}

}  // namespace accel::memory

// PyTorch's spelling for CUDA devices: accel::cuda::memory_allocated() is device 0.
namespace accel::cuda {

inline std::int64_t memory_allocated(int device = 0) {
  return memory::memory_allocated(Device(DeviceType::CUDA, device));
}
inline std::int64_t memory_reserved(int device = 0) {
  return memory::memory_reserved(Device(DeviceType::CUDA, device));
}
inline std::int64_t max_memory_allocated(int device = 0) {
  return memory::max_memory_allocated(Device(DeviceType::CUDA, device));
}
inline std::int64_t max_memory_reserved(int device = 0) {
  return memory::max_memory_reserved(Device(DeviceType::CUDA, device));
}
inline void reset_peak_memory_stats(int device = 0) {
  memory::reset_peak_memory_stats(Device(DeviceType::CUDA, device));
}
inline std::map<std::string, std::int64_t> memory_stats(int device = 0) {
  return memory::memory_stats(Device(DeviceType::CUDA, device));
}
inline std::string memory_summary(int device = 0) { return memory::memory_summary(Device(DeviceType::CUDA, device)); }
// Does not free memory that tensors still hold: drop them first (see CachingAllocator).
inline void empty_cache(int device = 0) { memory::empty_cache(Device(DeviceType::CUDA, device)); }
inline void set_per_process_memory_fraction(double fraction, int device = 0) {
  memory::set_per_process_memory_fraction(fraction, Device(DeviceType::CUDA, device));
}
inline std::pair<std::size_t, std::size_t> mem_get_info(int device = 0) {
  return memory::mem_get_info(Device(DeviceType::CUDA, device));
}

}  // namespace accel::cuda
