// The caching allocator on a real CUDA device (cudaMalloc underneath): the seed model's numbers,
// memory handed back to the driver by empty_cache (seen through cudaMemGetInfo), a real
// out-of-memory, the fraction cap, and the PyTorch-named API on cuda:0. Skipped where this build
// has no CUDA or the machine has no GPU; scripts/gpu-check.sh runs it on a GPU machine.
#include <gtest/gtest.h>

#include "accel/core/error.h"
#include "accel/hw/cuda_api.h"
#include "accel/memory/caching_allocator.h"
#include "accel/memory/device_allocators.h"
#ifdef ACCEL_WITH_CUDA
#include "accel/backends/cuda/cuda_memory.h"
#endif

using namespace accel;
using namespace accel::memory;

namespace {

constexpr std::size_t kMiB = 1 << 20;

// A caching allocator of the test's own over cuda:0, so earlier tests' blocks do not show.
std::unique_ptr<CachingAllocator> make_cuda_allocator() {
#ifdef ACCEL_WITH_CUDA
  return std::make_unique<CachingAllocator>(make_cuda_memory(0), AllocatorConfig{}, Device(DeviceType::CUDA, 0));
#else
  return nullptr;
#endif
}

std::size_t driver_free_bytes(const CachingAllocator& a) { return a.mem_get_info().first; }

}  // namespace

class CudaAllocator : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef ACCEL_WITH_CUDA
    GTEST_SKIP() << "this build has no CUDA (ACCEL_WITH_CUDA=OFF)";
#endif
    if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  }
};

TEST_F(CudaAllocator, SeedModelParametersTake814592BytesInOneSmallSegment) {
  auto a = make_cuda_allocator();
  // The seed's parameters: 784x256 and 256 floats, 256x10 and 10 floats.
  std::vector<void*> params = {a->malloc(802816), a->malloc(1024), a->malloc(10240), a->malloc(40)};
  EXPECT_EQ(a->memory_allocated(), 814592);  // torch.cuda.memory_allocated() after model.cuda()
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(2 * kMiB));
  for (void* p : params) {
    EXPECT_NE(p, nullptr);
    a->free(p);
  }
  EXPECT_EQ(a->memory_allocated(), 0);
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(2 * kMiB));
}

TEST_F(CudaAllocator, FreedBlocksStayCachedUntilEmptyCacheGivesThemToTheDriver) {
  auto a = make_cuda_allocator();
  const std::size_t before = driver_free_bytes(*a);
  void* p = a->malloc(256 * kMiB);
  const std::size_t while_held = driver_free_bytes(*a);
  EXPECT_GE(before - while_held, 256 * kMiB);  // cudaMalloc took it from the device
  a->free(p);
  EXPECT_EQ(a->memory_allocated(), 0);
  EXPECT_EQ(a->memory_reserved(), static_cast<std::int64_t>(256 * kMiB));
  EXPECT_LE(driver_free_bytes(*a), while_held + 2 * kMiB);  // cached: the driver does not see it back
  void* again = a->malloc(200 * kMiB);                      // served from the cache, no cudaMalloc
  EXPECT_EQ(again, p);
  a->free(again);
  a->empty_cache();
  EXPECT_EQ(a->memory_reserved(), 0);
  EXPECT_GE(driver_free_bytes(*a) + 2 * kMiB, before);  // returned to the driver
}

TEST_F(CudaAllocator, ARequestLargerThanTheDeviceIsATypedErrorAndTheDeviceStaysUsable) {
  auto a = make_cuda_allocator();
  const std::size_t total = a->mem_get_info().second;
  try {
    a->malloc(2 * total);
    FAIL() << "expected OutOfMemoryError for " << 2 * total << " bytes";
  } catch (const OutOfMemoryError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cuda:0"), std::string::npos) << message;
    EXPECT_NE(message.find("GiB"), std::string::npos) << message;
  }
  EXPECT_EQ(a->memory_stats().num_ooms, 1);
  void* small = a->malloc(kMiB);  // the failed cudaMalloc left no sticky error behind
  EXPECT_NE(small, nullptr);
  a->free(small);
}

TEST_F(CudaAllocator, TheFractionCapsReservedMemoryBelowTheDevice) {
  auto a = make_cuda_allocator();
  const std::size_t total = a->mem_get_info().second;
  a->set_per_process_memory_fraction(0.01);
  EXPECT_THROW(a->malloc(total / 50), OutOfMemoryError);  // 2% of the device
  void* fits = a->malloc(total / 200);                    // 0.5%
  EXPECT_NE(fits, nullptr);
  a->free(fits);
}

TEST_F(CudaAllocator, PyTorchNamedApiAnswersForCuda0) {
  const std::int64_t base = accel::cuda::memory_allocated(0);
  void* p = caching_allocator(Device(DeviceType::CUDA, 0)).malloc(4096);
  EXPECT_EQ(accel::cuda::memory_allocated(0), base + 4096);
  EXPECT_GE(accel::cuda::max_memory_allocated(0), base + 4096);
  caching_allocator(Device(DeviceType::CUDA, 0)).free(p);
  EXPECT_EQ(accel::cuda::memory_allocated(0), base);
  const auto [free, total] = accel::cuda::mem_get_info(0);
  EXPECT_GT(total, free);
  EXPECT_NE(accel::cuda::memory_summary(0).find("cuda:0"), std::string::npos);
}
