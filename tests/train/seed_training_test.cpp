// The seed workflow on the real Fashion-MNIST (Debian's dataset-fashion-mnist), and the
// `accel train` command's behaviour on bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <string>

#include "../support/command.h"

#include "accel/train/seed_trainer.h"

using namespace accel;

using accel::testing::run_command;

TEST(SeedTraining, FiveEpochsAtBatch64ReachTheAccuracyTarget) {
  train::SeedConfig config;
  config.epochs = 5;
  config.batch_size = 64;
  config.device = "cpu";
  const train::TrainReport report = train::train_seed_model(config);
  ASSERT_EQ(report.epochs.size(), 5u);
  for (std::size_t i = 1; i < report.epochs.size(); ++i) {
    EXPECT_LT(report.epochs[i].train_loss, report.epochs[i - 1].train_loss) << "epoch " << i + 1;
  }
  EXPECT_GE(report.epochs.back().test_accuracy, 0.87);
}

TEST(SeedTraining, AccumulatingTwoHalfBatchesFollowsTheFullBatchRun) {
  // The loader's permutation does not depend on the batch size, so two accumulated batches of
  // 32 are the same 64 samples as one batch of 64: the same gradient up to rounding.
  const auto run = [](std::int64_t batch, int accumulate) {
    train::SeedConfig config;
    config.epochs = 1;
    config.batch_size = batch;
    config.accumulate = accumulate;
    config.threads = 1;
    config.device = "cpu";
    return train::train_seed_model(config).epochs.at(0);
  };
  const auto full = run(64, 1), accumulated = run(32, 2), small_steps = run(32, 1);
  std::cout << "loss: batch 64 " << full.train_loss << ", 2 x 32 accumulated " << accumulated.train_loss
            << ", batch 32 " << small_steps.train_loss << "\n";
  EXPECT_NEAR(accumulated.test_accuracy, full.test_accuracy, 0.005);
  EXPECT_LT(std::abs(accumulated.train_loss - full.train_loss),
            0.2 * std::abs(small_steps.train_loss - full.train_loss));
  EXPECT_THROW(run(64, 0), ValueError);
}

TEST(TrainCommand, MissingDatasetExplainsTheFix) {
  const auto result = run_command(std::string(ACCEL_CLI_PATH) + " train --epochs 1 --data /nonexistent/fashion");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("apt-get install dataset-fashion-mnist"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("--data"), std::string::npos) << result.output;
}

TEST(TrainCommand, CudaWithoutAGpuIsAnErrorNotACrash) {
  const auto result = run_command(std::string(ACCEL_CLI_PATH) + " train --epochs 1 --device cuda");
  EXPECT_EQ(result.status, 1) << result.output;
  // "no CUDA device: ..." here; where a GPU exists, the message that its kernels are not built yet.
  EXPECT_NE(result.output.find("CUDA"), std::string::npos) << result.output;
}

TEST(TrainCommand, BadFlagsAreRejectedByTheParser) {
  EXPECT_NE(run_command(std::string(ACCEL_CLI_PATH) + " train --batch-size 0").status, 0);
  const auto result = run_command(std::string(ACCEL_CLI_PATH) + " train --device tpu:9 --epochs 1");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("unknown device"), std::string::npos) << result.output;
}
