#include <algorithm>
#include <cstdlib>
#include <string>

#include "accel/core/error.h"
#include "accel/memory/allocator.h"

namespace accel::memory {
namespace {

// 64-byte alignment: one cache line, and what AVX-512 loads want.
constexpr std::size_t kAlignment = 64;

class HostAllocator final : public Allocator {
 public:
  void* allocate(std::size_t nbytes) override {
    const std::size_t rounded = std::max<std::size_t>(kAlignment, (nbytes + kAlignment - 1) / kAlignment * kAlignment);
    void* ptr = std::aligned_alloc(kAlignment, rounded);
    if (ptr == nullptr) {
      throw OutOfMemoryError("host allocation of " + std::to_string(nbytes) +
                             " bytes failed: the machine is out of memory (" +
                             std::to_string(allocated_.load()) +
                             " bytes held by accel tensors); use a smaller batch size");
    }
    const std::int64_t now = allocated_.fetch_add(static_cast<std::int64_t>(nbytes)) + static_cast<std::int64_t>(nbytes);
    std::int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    count_.fetch_add(1);
    return ptr;
  }

  void deallocate(void* ptr, std::size_t nbytes) noexcept override {
    std::free(ptr);
    allocated_.fetch_sub(static_cast<std::int64_t>(nbytes));
  }

  Device device() const override { return kCPU; }

  AllocatorStats stats() const override {
    return {allocated_.load(), peak_.load(), count_.load()};
  }

  void reset_peak_stats() override { peak_.store(allocated_.load()); }

 private:
  std::atomic<std::int64_t> allocated_{0};
  std::atomic<std::int64_t> peak_{0};
  std::atomic<std::int64_t> count_{0};
};

}  // namespace

Allocator& host_allocator() {
  static HostAllocator allocator;
  return allocator;
}

}  // namespace accel::memory
