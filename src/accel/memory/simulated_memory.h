// A simulated device: `capacity` bytes served from host memory, so a memory budget can be
// rehearsed on a CPU (and the allocator tested deterministically). Events stay pending until
// complete_events() is called, which lets tests exercise cross-stream deferral.
//
// Its pointers are not host-addressable, as a GPU's are not: each is the host address with bit
// 62 set, outside the canonical address range, so a host dereference faults (SIGSEGV) instead
// of silently working. The sim backend's kernels (and allocator tests) translate with
// sim_host_address(); the harness (tests/ops/backend_ops_test.cpp) thereby catches a kernel or
// op that touches device memory from the host.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <unordered_set>

#include "accel/memory/device_memory.h"

namespace accel::memory {

inline constexpr std::uintptr_t kSimAddressTag = std::uintptr_t{1} << 62;

// The host address behind a sim device pointer (null stays null).
inline void* sim_host_address(const void* device_ptr) {
  return device_ptr ? reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(device_ptr) & ~kSimAddressTag) : nullptr;
}

class SimulatedMemory final : public DeviceMemory {
 public:
  SimulatedMemory(std::size_t capacity, int index = 0, bool events_complete_immediately = true);
  ~SimulatedMemory() override;

  void* raw_allocate(std::size_t bytes) override;
  void raw_free(void* ptr, std::size_t bytes) override;
  std::size_t total_memory() const override { return capacity_; }
  std::size_t free_memory() const override;
  void synchronize() override { complete_events(); }
  EventId record_event(StreamId stream) override;
  bool event_done(EventId event) override;
  void release_event(EventId event) override;
  std::string name() const override;
  bool simulated() const override { return true; }

  // Marks every recorded event done (the streams' work has finished).
  void complete_events();
  std::size_t raw_allocations() const;  // live raw_allocate blocks, for tests

 private:
  std::size_t capacity_;
  int index_;
  bool immediate_;
  mutable std::mutex mutex_;
  std::size_t used_ = 0;
  // The host addresses of live blocks (callers only ever see them tagged). Besides counting,
  // they keep the blocks visibly referenced for LeakSanitizer, which cannot see through a tag.
  std::unordered_set<void*> blocks_;
  EventId next_event_ = 1;
  std::set<EventId> pending_;
};

}  // namespace accel::memory
