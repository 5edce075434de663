// CachingAllocator: PyTorch's CUDA caching allocator rules (c10/cuda/CUDACachingAllocator.cpp)
// over any DeviceMemory, so memory_allocated/memory_reserved mean what PyTorch users expect:
//
//  - requests are rounded up to 512 B;
//  - requests <= 1 MiB come from a small pool of 2 MiB segments, 1-10 MiB requests from 20 MiB
//    segments, larger ones from segments rounded up to 2 MiB;
//  - a request takes the best-fitting free block of its pool and stream, split when the rest is
//    worth keeping (>= 512 B in the small pool, > 1 MiB in the large pool); freed blocks merge
//    with free neighbours of the same segment;
//  - a block used on other streams (record_stream) is reused only after events on those
//    streams have passed;
//  - when the device cannot give a new segment, the cache's fully free segments are released
//    and the allocation retried once before OutOfMemoryError.
//
//   CachingAllocator alloc(std::make_unique<SimulatedMemory>(16ull << 30));
//   void* p = alloc.malloc(1000);   // memory_allocated() == 1024, memory_reserved() == 2 MiB
//   alloc.free(p);                  // cached: memory_reserved() stays 2 MiB until empty_cache()
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "accel/memory/allocator.h"
#include "accel/memory/device_memory.h"
#include "accel/memory/memory_stats.h"
#include "accel/memory/usage_publisher.h"

namespace accel::memory {

inline constexpr std::size_t kMinBlockSize = 512;
inline constexpr std::size_t kSmallSize = 1 << 20;       // largest "small" request
inline constexpr std::size_t kSmallBuffer = 2 << 20;     // small-pool segment
inline constexpr std::size_t kLargeBuffer = 20 << 20;    // segment for 1-10 MiB requests
inline constexpr std::size_t kMinLargeAlloc = 10 << 20;  // from here, segments fit the request
inline constexpr std::size_t kRoundLarge = 2 << 20;      // ... rounded up to 2 MiB

// Settings from ACCEL_ALLOC_CONF ("max_split_size_mb:128,per_process_memory_fraction:0.5").
struct AllocatorConfig {
  std::size_t max_split_size = SIZE_MAX;  // blocks this large are never split
  std::optional<double> memory_fraction;  // cap on reserved memory, as a fraction of capacity

  // Parses the ACCEL_ALLOC_CONF syntax; throws ValueError naming the key and the valid ones.
  static AllocatorConfig parse(const std::string& text);
  // ACCEL_ALLOC_CONF, plus ACCEL_MEMORY_FRACTION (a runtime's tier cap) when no fraction is set.
  static AllocatorConfig from_environment();
};

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(std::unique_ptr<DeviceMemory> device, AllocatorConfig config = {}, Device owner = kCPU);
  ~CachingAllocator() override;

  // Returns null for 0 bytes. Throws OutOfMemoryError with the numbers and what to try.
  void* malloc(std::size_t bytes, StreamId stream = 0);
  // Throws ValueError for a pointer this allocator did not hand out.
  void free(void* ptr);
  // Marks `ptr` as used on `stream` too: its memory is reused only after that stream's work.
  void record_stream(void* ptr, StreamId stream);

  // Allocator interface (tensor storages).
  void* allocate(std::size_t nbytes) override { return malloc(nbytes); }
  void deallocate(void* ptr, std::size_t) noexcept override;
  Device device() const override { return owner_; }
  AllocatorStats stats() const override;
  void reset_peak_stats() override { reset_peak_memory_stats(); }

  std::int64_t memory_allocated() const;
  std::int64_t memory_reserved() const;
  std::int64_t max_memory_allocated() const;
  std::int64_t max_memory_reserved() const;
  void reset_peak_memory_stats();
  MemoryStats memory_stats() const;
  // A readable table like torch.cuda.memory_summary().
  std::string memory_summary() const;
  // Waits for the device, then returns every fully free cached segment to it. Memory that
  // tensors still hold is NOT freed: drop the tensors first. Split segments with a live block
  // stay (they show as inactive_split / non-releasable).
  void empty_cache();
  // Caps reserved memory at fraction * capacity (0 < fraction <= 1).
  void set_per_process_memory_fraction(double fraction);
  std::optional<double> memory_fraction() const;
  // {free, total} bytes of the device, as cudaMemGetInfo.
  std::pair<std::size_t, std::size_t> mem_get_info() const;
  std::string device_name() const { return device_->name(); }
  // Publishes the live counters for `accel smi` (see usage_publisher.h) from now on.
  void publish_usage(std::unique_ptr<UsagePublisher> publisher);
  bool simulated() const { return device_->simulated(); }

  // For tests: every block of every segment as (address, size, allocated), in address order.
  struct BlockView {
    const void* ptr;
    std::size_t size;
    bool allocated;
    bool small_pool;
  };
  std::vector<BlockView> snapshot() const;

 private:
  struct Block;
  struct BlockOrder {
    bool operator()(const Block* a, const Block* b) const;
  };
  using Pool = std::set<Block*, BlockOrder>;

  Block* find_free_block(Pool& pool, std::size_t size, StreamId stream);
  bool should_split(const Block* block, std::size_t size) const;
  Block* allocate_segment(std::size_t segment_size, std::size_t request, bool small, StreamId stream);
  void release_cached_blocks();
  void free_block(Block* block);
  void insert_free(Block* block);
  void erase_free(Block* block);
  void process_events();
  [[noreturn]] void throw_oom(std::size_t request, std::size_t segment_size, const char* reason);
  void update_stat(StatArray& stat, bool small, std::int64_t amount);
  void publish();

  std::unique_ptr<DeviceMemory> device_;
  AllocatorConfig config_;
  Device owner_;
  mutable std::mutex mutex_;
  Pool small_pool_, large_pool_;
  std::unordered_map<void*, Block*> active_;
  std::vector<std::pair<EventId, Block*>> pending_events_;
  MemoryStats stats_;
  std::unique_ptr<UsagePublisher> publisher_;
};

}  // namespace accel::memory
