// A million seeded random allocate/free operations checked against an independent model of
// what must be allocated, and concurrent allocations from several threads.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <map>
#include <thread>

#include "accel/memory/caching_allocator.h"
#include "accel/memory/simulated_memory.h"
#include "accel/tensor/generator.h"

using namespace accel;
using namespace accel::memory;

namespace {

constexpr std::size_t kMiB = 1 << 20;

std::size_t model_round(std::size_t bytes) { return (bytes + 511) / 512 * 512; }

}  // namespace

TEST(AllocatorStress, MillionRandomOperationsAgreeWithAnIndependentModel) {
  CachingAllocator a(std::make_unique<SimulatedMemory>(8192 * kMiB), {}, Device(DeviceType::Sim, 0));
  Generator gen(20261126);
  struct Live {
    std::size_t rounded, requested;
  };
  std::map<char*, Live> live;  // the model: address -> sizes
  std::vector<char*> order;    // for picking a random live block
  std::int64_t model_allocated = 0, model_requested = 0;
  constexpr int kOperations = 1000000;
  for (int op = 0; op < kOperations; ++op) {
    const bool allocate = live.empty() || (live.size() < 400 && gen.below(100) < 52);
    if (allocate) {
      // Mostly small tensors, some medium, a few large: PyTorch's three size classes.
      const std::uint64_t kind = gen.below(100);
      const std::size_t bytes = kind < 80   ? 1 + gen.below(kMiB)
                                : kind < 97 ? kMiB + gen.below(9 * kMiB)
                                            : 10 * kMiB + gen.below(30 * kMiB);
      char* p = static_cast<char*>(a.malloc(bytes));
      ASSERT_NE(p, nullptr);
      const std::size_t rounded = model_round(bytes);
      // No overlap with the neighbours in address order.
      auto next = live.lower_bound(p);
      if (next != live.end()) {
        ASSERT_LE(p + rounded, next->first) << "op " << op;
      }
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + prev->second.rounded, p) << "op " << op;
      }
      live[p] = {rounded, bytes};
      order.push_back(p);
      model_requested += static_cast<std::int64_t>(bytes);
      model_allocated += static_cast<std::int64_t>(rounded);
    } else {
      const std::size_t pick = gen.below(order.size());
      char* p = order[pick];
      order[pick] = order.back();
      order.pop_back();
      a.free(p);
      model_allocated -= static_cast<std::int64_t>(live[p].rounded);
      model_requested -= static_cast<std::int64_t>(live[p].requested);
      live.erase(p);
    }
    const MemoryStats s = a.memory_stats();
    // A block is never smaller than the rounded request; the large pool may hand out up to
    // 1 MiB more (a remainder too small to split), which the model allows for.
    ASSERT_GE(s.allocated_bytes[kAllPools].current, model_allocated) << "op " << op;
    ASSERT_LE(s.allocated_bytes[kAllPools].current, model_allocated + static_cast<std::int64_t>(live.size() * kMiB));
    ASSERT_EQ(s.requested_bytes[kAllPools].current, model_requested) << "op " << op;
    ASSERT_EQ(s.allocation[kAllPools].current, static_cast<std::int64_t>(live.size())) << "op " << op;
    ASSERT_GE(s.reserved_bytes[kAllPools].current, s.allocated_bytes[kAllPools].current) << "op " << op;
    ASSERT_EQ(s.allocated_bytes[kAllPools].current,
              s.allocated_bytes[kSmallPool].current + s.allocated_bytes[kLargePool].current);
    if (op % 50000 == 0) {
      // The blocks tile the segments exactly, and the allocated ones are the model's.
      std::int64_t covered = 0;
      std::size_t allocated_blocks = 0;
      for (const auto& b : a.snapshot()) {
        covered += static_cast<std::int64_t>(b.size);
        allocated_blocks += b.allocated;
        if (b.allocated) {
          ASSERT_TRUE(live.count(static_cast<char*>(const_cast<void*>(b.ptr)))) << "op " << op;
        }
      }
      ASSERT_EQ(covered, s.reserved_bytes[kAllPools].current) << "op " << op;
      ASSERT_EQ(allocated_blocks, live.size()) << "op " << op;
    }
  }
  for (char* p : order) a.free(p);
  EXPECT_EQ(a.memory_allocated(), 0);
  a.empty_cache();
  EXPECT_EQ(a.memory_reserved(), 0);  // nothing leaked: every segment went back
}

TEST(AllocatorStress, ConcurrentThreadsNeverShareABlock) {
  CachingAllocator a(std::make_unique<SimulatedMemory>(4096 * kMiB), {}, Device(DeviceType::Sim, 0));
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  std::atomic<int> corrupted{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Generator gen(static_cast<std::uint64_t>(t) + 1);
      std::vector<std::pair<unsigned char*, std::size_t>> mine;
      for (int op = 0; op < 20000; ++op) {
        if (mine.empty() || (mine.size() < 64 && gen.below(2) == 0)) {
          const std::size_t bytes = 1 + gen.below(gen.below(10) == 0 ? 3 * kMiB : 64 * 1024);
          auto* p = static_cast<unsigned char*>(memory::sim_host_address(a.malloc(bytes)));
          std::memset(p, t + 1, bytes);  // the block is this thread's alone
          mine.emplace_back(p, bytes);
        } else {
          const std::size_t pick = gen.below(mine.size());
          auto [p, bytes] = mine[pick];
          for (std::size_t i = 0; i < bytes; i += 97) corrupted += p[i] != t + 1;
          a.free(reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) | memory::kSimAddressTag));
          mine[pick] = mine.back();
          mine.pop_back();
        }
      }
      for (auto [p, bytes] : mine)
        a.free(reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) | memory::kSimAddressTag));
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(corrupted.load(), 0);
  EXPECT_EQ(a.memory_allocated(), 0);
  EXPECT_EQ(a.memory_stats().allocation[kAllPools].current, 0);
}
