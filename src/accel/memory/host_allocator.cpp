#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "accel/core/error.h"
#include "accel/memory/allocator.h"

namespace accel::memory {
namespace {

// 64-byte alignment: one cache line, and what AVX-512 loads want.
constexpr std::size_t kAlignment = 64;
// Freed blocks of up to this many bytes in total are kept for reuse. A training step frees and
// reallocates the same sizes every step; handing those back to malloc made glibc return them
// to the kernel and fault them in again each step (measured: ~10% of a seed step at batch 64).
constexpr std::size_t kMaxCachedBytes = 64u << 20;

std::size_t round_up(std::size_t nbytes) {
  return std::max(kAlignment, (nbytes + kAlignment - 1) / kAlignment * kAlignment);
}

class HostAllocator final : public Allocator {
 public:
  ~HostAllocator() override {
    for (auto& [size, blocks] : free_blocks_) {
      for (void* p : blocks) std::free(p);
    }
  }

  void* allocate(std::size_t nbytes) override {
    const std::size_t rounded = round_up(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    void* ptr = nullptr;
    auto it = free_blocks_.find(rounded);
    if (it != free_blocks_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= rounded;
    } else {
      ptr = std::aligned_alloc(kAlignment, rounded);
      if (ptr == nullptr) {
        release_cache();
        ptr = std::aligned_alloc(kAlignment, rounded);
      }
      if (ptr == nullptr) {
        throw OutOfMemoryError(
            "host allocation of " + std::to_string(nbytes) + " bytes failed: the machine is out of memory (" +
            std::to_string(stats_.allocated_bytes) + " bytes held by accel tensors); use a smaller batch size");
      }
    }
    stats_.allocated_bytes += static_cast<std::int64_t>(nbytes);
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
    ++stats_.allocations;
    return ptr;
  }

  void deallocate(void* ptr, std::size_t nbytes) noexcept override {
    const std::size_t rounded = round_up(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.allocated_bytes -= static_cast<std::int64_t>(nbytes);
    if (cached_bytes_ + rounded <= kMaxCachedBytes) {
      try {
        free_blocks_[rounded].push_back(ptr);
        cached_bytes_ += rounded;
        return;
      } catch (...) {  // no memory for the bookkeeping: just free the block
      }
    }
    std::free(ptr);
  }

  Device device() const override { return kCPU; }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peak_stats() override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

 private:
  void release_cache() {
    for (auto& [size, blocks] : free_blocks_) {
      for (void* p : blocks) std::free(p);
      blocks.clear();
    }
    cached_bytes_ = 0;
  }

  mutable std::mutex mutex_;
  AllocatorStats stats_;
  std::size_t cached_bytes_ = 0;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks_;
};

}  // namespace

Allocator& host_allocator() {
  // Never destroyed: tensors in static storage may be freed after main returns.
  static HostAllocator* allocator = new HostAllocator();
  return *allocator;
}

}  // namespace accel::memory
