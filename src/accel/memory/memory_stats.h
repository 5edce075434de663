// Memory statistics with PyTorch's meaning (torch.cuda.memory_stats): for each quantity, the
// current value, the peak since the last reset, and the totals allocated and freed; split by
// pool (all, small_pool for requests <= 1 MiB, large_pool).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace accel::memory {

struct Stat {
  std::int64_t current = 0;
  std::int64_t peak = 0;
  std::int64_t allocated = 0;  // total increases
  std::int64_t freed = 0;      // total decreases

  void increase(std::int64_t amount) {
    current += amount;
    allocated += amount;
    if (current > peak) peak = current;
  }
  void decrease(std::int64_t amount) {
    current -= amount;
    freed += amount;
  }
};

enum PoolIndex { kAllPools = 0, kSmallPool = 1, kLargePool = 2 };
using StatArray = std::array<Stat, 3>;  // indexed by PoolIndex

struct MemoryStats {
  StatArray allocation;       // blocks handed to callers
  StatArray segment;          // device allocations (cudaMalloc)
  StatArray active;           // allocated blocks plus freed ones waiting on other streams
  StatArray inactive_split;   // free blocks inside partly used segments
  StatArray allocated_bytes;  // bytes of allocated blocks (rounded sizes)
  StatArray reserved_bytes;   // bytes of segments
  StatArray active_bytes;
  StatArray inactive_split_bytes;      // fragmentation that empty_cache cannot release
  StatArray requested_bytes;           // bytes callers asked for (before rounding)
  std::int64_t num_alloc_retries = 0;  // device allocations retried after freeing the cache
  std::int64_t num_ooms = 0;           // OutOfMemoryErrors thrown
  std::int64_t num_device_alloc = 0;
  std::int64_t num_device_free = 0;
};

// The flat dictionary torch.cuda.memory_stats() returns: "allocated_bytes.all.current",
// "segment.small_pool.peak", "num_alloc_retries", ...
std::map<std::string, std::int64_t> to_dictionary(const MemoryStats& stats);

}  // namespace accel::memory
