// Batches gathered on a device (take_rows_into, data::DeviceBatches): the same rows as the host
// loader's batches, in every epoch's order, and a bad row index named. Runs on every registered
// device that is present (cpu, sim; cuda:0 on a GPU machine).
#include <gtest/gtest.h>

#include "../support/present_devices.h"
#include "accel/data/device_batches.h"
#include "accel/ops/ops.h"

using namespace accel;

using accel::testing::present_devices;

TEST(TakeRows, GathersTheNamedRowsOnEveryDeviceAndNamesABadIndex) {
  const Tensor source = arange(std::int64_t{5 * 3}, DType::Float32).reshape({5, 3});
  const Tensor pixels = arange(std::int64_t{5 * 3}, DType::UInt8).reshape({5, 3});  // odd row bytes: 3
  for (const Device device : present_devices()) {
    const Tensor rows = from_vector<std::int64_t>({4, 0, 4, 2}, {4}).to(device);
    Tensor out = empty({4, 3}, DType::Float32, device);
    take_rows_into(source.to(device), rows, out);
    EXPECT_EQ(out.to(kCPU).to_vector<float>(), (std::vector<float>{12, 13, 14, 0, 1, 2, 12, 13, 14, 6, 7, 8}))
        << device.to_string();
    Tensor out8 = empty({4, 3}, DType::UInt8, device);
    take_rows_into(pixels.to(device), rows, out8);
    EXPECT_EQ(out8.to(kCPU).to_vector<std::uint8_t>(),
              (std::vector<std::uint8_t>{12, 13, 14, 0, 1, 2, 12, 13, 14, 6, 7, 8}))
        << device.to_string();

    // uint8 images gathered as float32: each of the 256 values as the host loader scales it.
    const Tensor all_values = arange(std::int64_t{256}, DType::UInt8).reshape({4, 64});
    const Tensor reverse = from_vector<std::int64_t>({3, 2, 1, 0}, {4});
    Tensor reversed = empty({4, 64}, DType::UInt8);
    take_rows_into(all_values, reverse, reversed);
    Tensor scaled = empty({4, 64}, DType::Float32, device);
    take_rows_into(all_values.to(device), reverse.to(device), scaled);
    EXPECT_EQ(scaled.to(kCPU).to_vector<float>(), data::scale_pixels(reversed).to_vector<float>())
        << device.to_string();
    EXPECT_THROW(take_rows_into(source.to(device), rows, out8), ShapeError) << "float32 rows into uint8";

    const Tensor bad = from_vector<std::int64_t>({1, 5}, {2}).to(device);
    Tensor two = empty({2, 3}, DType::Float32, device);
    try {
      take_rows_into(source.to(device), bad, two);
      two.to(kCPU);  // an asynchronous device raises at its next synchronisation
      ADD_FAILURE() << "an index past the end was accepted on " << device.to_string();
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("index 5 at row 1 is out of range for 5 rows"), std::string::npos)
          << e.what();
    }
    EXPECT_THROW(take_rows_into(source.to(device), rows, two), ShapeError) << "out has 2 rows for 4 indices";
    EXPECT_THROW(take_rows_into(source.to(device), rows.to(DType::Int32), out), DTypeError);
  }
}

TEST(DeviceBatches, EveryBatchOfEveryEpochIsTheHostLoadersBatch) {
  Generator gen(1);
  const Tensor images = (rand({50, 4}, gen, 0.0, 255.0)).to(DType::UInt8);
  const Tensor labels = arange(std::int64_t{50}, DType::Int64);
  for (const Device device : present_devices()) {
    if (device.is_cpu()) continue;
    data::DataLoader loader(images, labels, {.batch_size = 8, .shuffle = true, .seed = 4});
    data::DeviceBatches on_device(loader, device);
    data::Batch buffers{empty({8, 4}, DType::Float32, device), empty({8}, DType::Int64, device)};
    for (int epoch = 0; epoch < 3; ++epoch) {
      for (std::size_t i = 0; i < loader.size(); ++i) {
        const data::Batch want = loader.batch(i);
        data::Batch got = buffers;
        if (!on_device.batch_into(i, got)) {
          ASSERT_EQ(i + 1, loader.size()) << "only the short last batch misses the buffers";
          ASSERT_EQ(want.inputs.shape()[0], 2);
          got = on_device.batch(i);
        }
        EXPECT_EQ(got.inputs.device(), device);
        // uint8 rows on the device, scaled as they are gathered: bit for bit the loader's.
        EXPECT_EQ(got.inputs.to(kCPU).to_vector<float>(), want.inputs.to_vector<float>()) << "epoch " << epoch;
        EXPECT_EQ(got.labels.to(kCPU).to_vector<std::int64_t>(), want.labels.to_vector<std::int64_t>());
      }
      loader.next_epoch();
    }
    // A restored order (a resumed checkpoint) is seen too.
    std::vector<std::int64_t> reversed(50);
    for (std::int64_t i = 0; i < 50; ++i) reversed[static_cast<std::size_t>(i)] = 49 - i;
    loader.restore(reversed, loader.shuffle_state());
    data::Batch got = buffers;
    ASSERT_TRUE(on_device.batch_into(0, got));
    EXPECT_EQ(got.labels.to(kCPU).to_vector<std::int64_t>(),
              (std::vector<std::int64_t>{49, 48, 47, 46, 45, 44, 43, 42}));
  }
}
