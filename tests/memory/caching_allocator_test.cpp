// The caching allocator on the simulated back-end, deterministic: PyTorch's rounding and
// pools, split and merge, the seed model's numbers, peaks, empty_cache, the fraction cap and
// its OutOfMemoryError, retries, streams, fragmentation.
#include <gtest/gtest.h>

#include "accel/core/error.h"
#include "accel/memory/caching_allocator.h"
#include "accel/memory/simulated_memory.h"

using namespace accel;
using namespace accel::memory;

namespace {

constexpr std::size_t kMiB = 1 << 20;

std::unique_ptr<CachingAllocator> make(std::size_t capacity = 1024 * kMiB, AllocatorConfig config = {},
                                       bool immediate_events = true) {
  return std::make_unique<CachingAllocator>(std::make_unique<SimulatedMemory>(capacity, 0, immediate_events), config,
                                            Device(DeviceType::Sim, 0));
}

std::int64_t stat(const StatArray& s, PoolIndex pool = kAllPools) { return s[pool].current; }

std::string oom_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const OutOfMemoryError& e) {
    return e.what();
  }
  return "(no OutOfMemoryError)";
}

}  // namespace

TEST(CachingAllocator, RoundsTo512AndPicksThePool) {
  auto a = make();
  void* tiny = a->malloc(1);
  EXPECT_EQ(a->memory_allocated(), 512);
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(2 * kMiB));
  void* exactly_small = a->malloc(kMiB);  // <= 1 MiB: small pool, best fit in the same 2 MiB segment
  MemoryStats s = a->memory_stats();
  EXPECT_EQ(stat(s.segment, kSmallPool), 1);
  EXPECT_EQ(stat(s.allocated_bytes, kSmallPool), static_cast<std::int64_t>(512 + kMiB));
  void* medium = a->malloc(kMiB + 1);  // 1-10 MiB: a 20 MiB large segment
  s = a->memory_stats();
  EXPECT_EQ(stat(s.segment, kLargePool), 1);
  EXPECT_EQ(stat(s.reserved_bytes, kLargePool), static_cast<std::int64_t>(20 * kMiB));
  EXPECT_EQ(stat(s.allocated_bytes, kLargePool), static_cast<std::int64_t>(kMiB + 512));
  void* more = a->malloc(11 * kMiB);  // carved from the 20 MiB segment's free 19 MiB
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(22 * kMiB));
  EXPECT_EQ(stat(a->memory_stats().requested_bytes), static_cast<std::int64_t>(1 + kMiB + kMiB + 1 + 11 * kMiB));
  EXPECT_EQ(a->malloc(0), nullptr);
  for (void* p : {tiny, exactly_small, medium, more}) a->free(p);
  EXPECT_EQ(a->memory_allocated(), 0);
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(22 * kMiB));  // cached, not returned

  auto fresh = make();
  void* big = fresh->malloc(11 * kMiB);  // >= 10 MiB on its own: a segment rounded up to 2 MiB
  EXPECT_EQ(fresh->memory_reserved(), static_cast<std::int64_t>(12 * kMiB));
  // The 1 MiB left over is not more than 1 MiB, so the block is not split: all 12 MiB count as
  // allocated, as in PyTorch (requested_bytes keeps the 11 MiB).
  EXPECT_EQ(fresh->memory_allocated(), static_cast<std::int64_t>(12 * kMiB));
  EXPECT_EQ(stat(fresh->memory_stats().requested_bytes), static_cast<std::int64_t>(11 * kMiB));
  fresh->free(big);
}

TEST(CachingAllocator, SplitsBlocksAndMergesFreeNeighbours) {
  auto a = make();
  char* x = static_cast<char*>(a->malloc(1000));
  char* y = static_cast<char*>(a->malloc(1000));
  EXPECT_EQ(y, x + 1024);  // carved from the same segment, best fit
  auto blocks = a->snapshot();
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[2].size, 2 * kMiB - 2048);
  EXPECT_FALSE(blocks[2].allocated);
  EXPECT_EQ(stat(a->memory_stats().inactive_split), 1);
  a->free(x);
  EXPECT_EQ(stat(a->memory_stats().inactive_split), 2);
  EXPECT_EQ(stat(a->memory_stats().inactive_split_bytes), static_cast<std::int64_t>(2 * kMiB - 1024));
  a->free(y);  // merges with both neighbours: one free 2 MiB block again
  blocks = a->snapshot();
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_EQ(blocks[0].size, 2 * kMiB);
  EXPECT_EQ(stat(a->memory_stats().inactive_split), 0);
  EXPECT_EQ(a->malloc(1000), x);  // and is reused
}

TEST(CachingAllocator, LargePoolSplitsOnlyWhenMoreThan1MiBRemains) {
  auto a = make();
  void* p = a->malloc(19 * kMiB + 512);  // >= 10 MiB: a segment rounded up to 2 MiB, 20 MiB
  EXPECT_EQ(a->snapshot().size(), 1u);   // 1 MiB - 512 B would remain, not more than 1 MiB: not split
  EXPECT_EQ(a->memory_allocated(), static_cast<std::int64_t>(20 * kMiB));
  a->free(p);
  void* q = a->malloc(5 * kMiB);  // reuses the cached 20 MiB block, split (15 MiB > 1 MiB remain)
  EXPECT_EQ(a->snapshot().size(), 2u);
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(20 * kMiB));
  a->free(q);
}

TEST(CachingAllocator, EmptyCacheReleasesExactlyTheFullyFreeSegments) {
  auto a = make();
  void* x = a->malloc(kMiB);        // small segment A, first half
  void* y = a->malloc(kMiB);        // small segment A, second half (best fit)
  void* z = a->malloc(600 * 1024);  // A is full: small segment B
  void* w = a->malloc(3 * kMiB);    // large segment C (20 MiB)
  EXPECT_EQ(a->memory_stats().segment[kAllPools].current, 3);
  a->free(y);  // A: partly free, x still lives there
  a->free(z);  // B: fully free
  a->free(w);  // C: fully free
  a->empty_cache();
  const MemoryStats s = a->memory_stats();
  EXPECT_EQ(s.num_device_free, 2);
  EXPECT_EQ(s.segment[kAllPools].current, 1);
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(2 * kMiB));  // A stays: empty_cache cannot free x
  EXPECT_EQ(a->memory_allocated(), static_cast<std::int64_t>(kMiB));
  EXPECT_EQ(stat(s.inactive_split_bytes), static_cast<std::int64_t>(kMiB));  // y's half of A: non-releasable
  a->free(x);
  a->empty_cache();
  EXPECT_EQ(a->memory_reserved(), 0);
}

TEST(CachingAllocator, PeaksAndTheirReset) {
  auto a = make();
  void* p = a->malloc(4 * kMiB);
  void* q = a->malloc(2 * kMiB);
  a->free(p);
  EXPECT_EQ(a->max_memory_allocated(), static_cast<std::int64_t>(6 * kMiB));
  EXPECT_EQ(a->memory_allocated(), static_cast<std::int64_t>(2 * kMiB));
  EXPECT_EQ(a->max_memory_reserved(), static_cast<std::int64_t>(20 * kMiB));
  a->reset_peak_memory_stats();
  EXPECT_EQ(a->max_memory_allocated(), static_cast<std::int64_t>(2 * kMiB));
  a->free(q);
  EXPECT_EQ(a->max_memory_allocated(), static_cast<std::int64_t>(2 * kMiB));
  const auto dict = to_dictionary(a->memory_stats());
  EXPECT_EQ(dict.at("allocated_bytes.all.current"), 0);
  EXPECT_EQ(dict.at("allocated_bytes.all.peak"), static_cast<std::int64_t>(2 * kMiB));
  EXPECT_EQ(dict.at("allocation.large_pool.allocated"), 2);
  EXPECT_EQ(dict.at("segment.large_pool.current"), 1);
  EXPECT_TRUE(dict.count("num_alloc_retries") && dict.count("num_ooms"));
}

TEST(CachingAllocator, FractionCapRaisesOutOfMemoryWithTheNumbersAndTheProcessGoesOn) {
  auto a = make(100 * kMiB);
  a->set_per_process_memory_fraction(0.1);                                // 10 MiB of reserve
  const std::string message = oom_message([&] { a->malloc(8 * kMiB); });  // needs a 20 MiB segment
  EXPECT_NE(message.find("sim:0 (simulated) out of memory"), std::string::npos) << message;
  EXPECT_NE(message.find("tried to allocate 8.00 MiB"), std::string::npos) << message;
  EXPECT_NE(message.find("100.00 MiB total"), std::string::npos) << message;
  EXPECT_NE(message.find("memory fraction cap 0.1 = 10.00 MiB"), std::string::npos) << message;
  EXPECT_NE(message.find("a smaller batch size"), std::string::npos) << message;
  EXPECT_NE(message.find("gradient accumulation"), std::string::npos) << message;
  EXPECT_NE(message.find("mixed precision"), std::string::npos) << message;
  EXPECT_EQ(message.find("empty_cache"), std::string::npos) << "nothing is cached, so empty_cache would not help";
  EXPECT_EQ(a->memory_stats().num_ooms, 1);
  void* smaller = a->malloc(kMiB);  // the caller retries with less: it works
  EXPECT_NE(smaller, nullptr);
  a->free(smaller);
  EXPECT_THROW(a->set_per_process_memory_fraction(1.5), ValueError);
}

TEST(CachingAllocator, OutOfMemoryFreesTheCacheAndRetriesOnce) {
  auto a = make(30 * kMiB);
  std::vector<void*> small;
  for (int i = 0; i < 14; ++i) small.push_back(a->malloc(kMiB));  // 7 small segments, 14 MiB
  for (void* p : small) a->free(p);                               // all cached
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(14 * kMiB));
  void* big = a->malloc(20 * kMiB);  // 14 + 20 > 30: the cache goes back to the device, then it fits
  EXPECT_NE(big, nullptr);
  const auto s = a->memory_stats();
  EXPECT_EQ(s.num_alloc_retries, 1);
  EXPECT_EQ(s.num_ooms, 0);
  EXPECT_EQ(s.num_device_free, 7);
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(20 * kMiB));
  a->free(big);
}

TEST(CachingAllocator, OutOfMemorySuggestsEmptyCacheOnlyWhenFragmentationIsLarge) {
  auto a = make(44 * kMiB);
  // Fill a 20 MiB segment with 4 MiB blocks, keep every other one: 8 MiB reserved but unallocated
  // that cannot be released (the segment still holds live blocks).
  std::vector<void*> blocks;
  for (int i = 0; i < 5; ++i) blocks.push_back(a->malloc(4 * kMiB));
  void* big = a->malloc(22 * kMiB);  // a second segment, 22 MiB: the device is now full (42 of 44)
  a->free(blocks[1]);
  a->free(blocks[3]);
  const std::string message = oom_message([&] { a->malloc(6 * kMiB); });
  EXPECT_NE(message.find("8.00 MiB reserved but unallocated"), std::string::npos) << message;
  EXPECT_NE(message.find("empty_cache() or ACCEL_ALLOC_CONF=max_split_size_mb"), std::string::npos) << message;
  a->free(big);
}

TEST(CachingAllocator, BlocksStayWithTheirStreamAndWaitForOtherStreamsWork) {
  auto sim = std::make_unique<SimulatedMemory>(1024 * kMiB, 0, /*events_complete_immediately=*/false);
  SimulatedMemory* device = sim.get();
  CachingAllocator a(std::move(sim), {}, Device(DeviceType::Sim, 0));
  void* on_s1 = a.malloc(1000, 1);
  a.free(on_s1);
  void* on_s2 = a.malloc(1000, 2);  // another stream: not the cached block of stream 1
  EXPECT_NE(on_s2, on_s1);
  EXPECT_EQ(a.memory_reserved(), static_cast<std::int64_t>(4 * kMiB));

  void* shared = a.malloc(1000, 2);
  a.record_stream(shared, 3);  // stream 3 reads it too
  a.free(shared);
  EXPECT_EQ(a.memory_allocated(), 1024);                     // no longer allocated ...
  EXPECT_EQ(a.memory_stats().active[kAllPools].current, 2);  // ... but still active until stream 3 is done
  void* next = a.malloc(1000, 2);
  EXPECT_NE(next, shared);  // not reused while stream 3's event is pending
  a.free(next);
  device->complete_events();
  EXPECT_EQ(a.malloc(1000, 2), shared);  // the event passed: reused
}

TEST(CachingAllocator, GrowingBatchesShowFragmentationInTheStats) {
  auto a = make();
  std::vector<void*> weights;
  void* activations = nullptr;
  // A training loop whose batch grows each step: activations of 1.5, 2.5, ... MiB between
  // long-lived 1.5 MiB buffers (optimizer state). Freed activations leave holes the next, larger request
  // cannot use.
  for (int step = 1; step <= 8; ++step) {
    if (activations) a->free(activations);
    activations = a->malloc(static_cast<std::size_t>((step + 0.5) * kMiB));
    weights.push_back(a->malloc(1536 * 1024));  // long-lived, in the large pool next to the activations
  }
  const MemoryStats s = a->memory_stats();
  EXPECT_GT(s.reserved_bytes[kAllPools].peak, s.allocated_bytes[kAllPools].peak);
  EXPECT_GT(s.inactive_split_bytes[kLargePool].peak, 0);
  EXPECT_GT(s.segment[kLargePool].current, 1);
  const std::string summary = a->memory_summary();
  EXPECT_NE(summary.find("sim:0 (simulated)"), std::string::npos);
  EXPECT_NE(summary.find("Non-releasable memory"), std::string::npos);
  for (void* w : weights) a->free(w);
  a->free(activations);
}

TEST(CachingAllocator, ConfigurationFromAccelAllocConf) {
  const AllocatorConfig c = AllocatorConfig::parse("max_split_size_mb:64,per_process_memory_fraction:0.5");
  EXPECT_EQ(c.max_split_size, 64 * kMiB);
  EXPECT_DOUBLE_EQ(*c.memory_fraction, 0.5);
  EXPECT_THROW(AllocatorConfig::parse("max_split_size_mb:abc"), ValueError);
  EXPECT_THROW(AllocatorConfig::parse("max_split_size_mb:8"), ValueError);
  EXPECT_THROW(AllocatorConfig::parse("per_process_memory_fraction:2"), ValueError);
  try {
    AllocatorConfig::parse("garbage_collection_threshold:0.6");
    FAIL();
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("max_split_size_mb"), std::string::npos);
  }
  // Oversize blocks (>= max_split_size) are neither split for small requests nor reused for
  // much smaller oversize ones.
  auto a = make(1024 * kMiB, AllocatorConfig::parse("max_split_size_mb:32"));
  void* oversize = a->malloc(40 * kMiB);
  a->free(oversize);
  void* small_request = a->malloc(12 * kMiB);
  EXPECT_NE(small_request, oversize);
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(52 * kMiB));
  a->free(small_request);
}

TEST(CachingAllocator, FreeingAForeignPointerIsAnError) {
  auto a = make();
  int local = 0;
  EXPECT_THROW(a->free(&local), ValueError);
  void* p = a->malloc(10);
  a->free(p);
  EXPECT_THROW(a->free(p), ValueError);
}
