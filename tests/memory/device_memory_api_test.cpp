// The PyTorch-named memory API on sim devices, through tensors and the seed's model.
#include <gtest/gtest.h>

#include "accel/memory/device_allocators.h"
#include "accel/nn/layers.h"
#include "accel/ops/ops.h"

using namespace accel;

TEST(DeviceMemoryApi, SeedModelParametersTake814592BytesAndOneSmallSegment) {
  const Device sim("sim:11");  // a device of this test's own, so its statistics start at zero
  nn::Sequential model(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 10));
  model.to(sim);
  // PyTorch's numbers for the same model on CUDA: 802816 + 1024 + 10240 + 512 (40 B rounded up).
  EXPECT_EQ(memory::memory_allocated(sim), 814592);
  EXPECT_EQ(memory::memory_reserved(sim), 2 * 1024 * 1024);
  EXPECT_EQ(model.parameters()[0].device(), sim);
}

TEST(DeviceMemoryApi, TrainingStepOnASimulatedDeviceMatchesTheCpu) {
  const Device sim("sim:12");
  Generator g1(5), g2(5);
  nn::Sequential cpu_model(nn::Linear(8, 4, true, g1), nn::ReLU(), nn::Linear(4, 3, true, g1));
  nn::Sequential sim_model(nn::Linear(8, 4, true, g2), nn::ReLU(), nn::Linear(4, 3, true, g2));
  sim_model.to(sim);
  const Tensor x = randn({5, 8}, g1);
  const Tensor y = from_vector<std::int64_t>({0, 1, 2, 1, 0}, {5});
  const Tensor cpu_loss = cross_entropy(cpu_model(x), y);
  const Tensor sim_loss = cross_entropy(sim_model(x.to(sim)), y.to(sim));
  EXPECT_EQ(sim_loss.device(), sim);
  EXPECT_FLOAT_EQ(sim_loss.item<float>(), cpu_loss.item<float>());
  sim_loss.backward();
  EXPECT_EQ(sim_model.parameters()[0].grad().device(), sim);
  EXPECT_GT(memory::max_memory_allocated(sim), memory::memory_allocated(sim) - 1);
}

TEST(DeviceMemoryApi, OutOfMemoryIsCatchableAndASmallerBatchThenFits) {
  const Device sim("sim:13");
  memory::set_simulated_device_capacity(13, 8 * 1024 * 1024);
  nn::Linear layer(784, 256);
  layer.to(sim);  // 0.8 MiB of weights
  const auto step = [&](std::int64_t batch) { return sum(layer(rand({batch, 784}).to(sim))).item<float>(); };
  EXPECT_THROW(step(4096), OutOfMemoryError);  // 12.25 MiB of input alone
  EXPECT_NO_THROW(step(256));
  EXPECT_EQ(memory::memory_stats(sim).at("num_ooms"), 1);
  EXPECT_THROW(memory::set_simulated_device_capacity(13, 1), ValueError);
}

TEST(DeviceMemoryApi, EmptyCacheKeepsWhatTensorsHold) {
  const Device sim("sim:14");
  Tensor kept = zeros({1024, 1024}, DType::Float32, sim);  // 4 MiB: a 20 MiB segment
  { Tensor dropped = zeros({1024, 1024}, DType::Float32, sim); }
  memory::empty_cache(sim);
  EXPECT_EQ(memory::memory_allocated(sim), 4 * 1024 * 1024);
  EXPECT_EQ(memory::memory_reserved(sim), 20 * 1024 * 1024);  // the segment holding `kept` stays
  kept = Tensor();
  memory::empty_cache(sim);
  EXPECT_EQ(memory::memory_reserved(sim), 0);
  const auto [free, total] = memory::mem_get_info(sim);
  EXPECT_EQ(free, total);
}

TEST(DeviceMemoryApi, CpuAndMissingCudaAnswerWithDeviceErrors) {
  EXPECT_THROW(memory::memory_allocated(kCPU), DeviceError);
  try {
    accel::cuda::memory_allocated();
    SUCCEED() << "a CUDA device is present";
  } catch (const DeviceError& e) {
    // A CUDA build on a machine without a GPU says so; a CPU-only build says it has no backend.
    const std::string what = e.what();
    EXPECT_TRUE(what.find("no CUDA device") != std::string::npos ||
                what.find("this build of accel has no cuda backend") != std::string::npos)
        << what;
  }
  const auto before = memory::host_allocator().stats().allocated_bytes;
  Tensor host = zeros({1000});
  EXPECT_EQ(memory::host_allocator().stats().allocated_bytes - before, 4000);
}

TEST(DeviceMemoryApi, RuntimeEnvironmentCapsTheFraction) {
  setenv("ACCEL_MEMORY_FRACTION", "0.25", 1);
  EXPECT_DOUBLE_EQ(*memory::AllocatorConfig::from_environment().memory_fraction, 0.25);
  setenv("ACCEL_ALLOC_CONF", "per_process_memory_fraction:0.5", 1);
  EXPECT_DOUBLE_EQ(*memory::AllocatorConfig::from_environment().memory_fraction, 0.5);  // explicit wins
  unsetenv("ACCEL_ALLOC_CONF");
  setenv("ACCEL_MEMORY_FRACTION", "7", 1);
  EXPECT_THROW(memory::AllocatorConfig::from_environment(), ValueError);
  unsetenv("ACCEL_MEMORY_FRACTION");
}
