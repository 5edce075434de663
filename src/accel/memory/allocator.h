// Allocator: the one interface every tensor storage is allocated through, so that a caching
// device allocator with PyTorch-style statistics can replace the plain one without touching
// tensors or ops.
//
//   memory::Allocator& alloc = memory::host_allocator();
//   void* p = alloc.allocate(1024);  // throws OutOfMemoryError
//   alloc.deallocate(p, 1024);
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "accel/core/device.h"

namespace accel::memory {

// Bytes currently held and the high-water mark since the last reset.
struct AllocatorStats {
  std::int64_t allocated_bytes = 0;
  std::int64_t peak_allocated_bytes = 0;
  std::int64_t allocations = 0;  // number of allocate() calls that succeeded
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns memory for nbytes (64-byte aligned; nbytes may be 0) or throws OutOfMemoryError
  // with the size asked for.
  virtual void* allocate(std::size_t nbytes) = 0;
  // Gives back a pointer from allocate() with the same nbytes.
  virtual void deallocate(void* ptr, std::size_t nbytes) noexcept = 0;
  virtual Device device() const = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak_stats() = 0;
};

// The host allocator: aligned_alloc/free with byte accounting and a bounded cache of freed
// blocks by size (so a training loop's per-step buffers are reused); thread-safe.
Allocator& host_allocator();

}  // namespace accel::memory
