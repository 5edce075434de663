// DeviceMemory: the raw memory of one device under the caching allocator: cudaMalloc/cudaFree
// for a GPU, or a simulated device of fixed capacity (host memory, labelled "simulated"
// wherever a user sees it). The allocator core is the same for both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace accel::memory {

// A stream as the allocator sees it: an opaque id (cudaStream_t on CUDA; 0 = default stream).
using StreamId = std::uintptr_t;
// A recorded event that says when a stream's work on a block is done.
using EventId = std::uintptr_t;

class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  // Null when the device cannot give `bytes` (the caller frees its cache and retries).
  virtual void* raw_allocate(std::size_t bytes) = 0;
  virtual void raw_free(void* ptr, std::size_t bytes) = 0;
  virtual std::size_t total_memory() const = 0;
  // Free memory on the device as the driver counts it (cudaMemGetInfo).
  virtual std::size_t free_memory() const = 0;
  // Waits for all work on the device (empty_cache waits before releasing).
  virtual void synchronize() = 0;
  // Cross-stream use: an event after the work queued so far on `stream`, and whether it has passed.
  virtual EventId record_event(StreamId stream) = 0;
  virtual bool event_done(EventId event) = 0;
  virtual void release_event(EventId event) = 0;
  // "cuda:0" or "sim:0 (simulated)".
  virtual std::string name() const = 0;
  virtual bool simulated() const = 0;
};

}  // namespace accel::memory
