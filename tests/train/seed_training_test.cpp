// The seed workflow on the real Fashion-MNIST (Debian's dataset-fashion-mnist), and the
// `accel train` command's behaviour on bad input.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
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
  auto result = run_command(std::string(ACCEL_CLI_PATH) + " train --device quantum:9 --epochs 1");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("unknown device 'quantum:9'"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("'xla' or 'tpu'"), std::string::npos) << result.output;
  result = run_command(std::string(ACCEL_CLI_PATH) + " train --device tpu:9 --epochs 1");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("'tpu:9': accel trains on tpu:0"), std::string::npos) << result.output;
}

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

// The scenario from outside: kill -TERM during epoch 3 of a 5-epoch `accel train`, then
// --resume: the saved weights are byte for byte those of a run never interrupted.
TEST(TrainCommand, KillTermInEpochThreeThenResumeSavesTheUninterruptedWeights) {
  const auto dir = std::filesystem::temp_directory_path() / ("accel_train_resume_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string train = std::string(ACCEL_CLI_PATH) + " train --epochs 5 --threads 1 --device cpu";
  const auto whole = run_command(train + " --save " + (dir / "whole.safetensors").string());
  ASSERT_EQ(whole.status, 0) << whole.output;

  const std::string log = (dir / "log").string(), ckpt = (dir / "ckpt").string();
  const auto interrupted =
      run_command("(" + train + " --checkpoint-dir " + ckpt + " > " + log + " 2>&1 & pid=$!; " +
                  "for i in $(seq 1200); do grep -q '^epoch 2 ' " + log + " && break; sleep 0.05; done; sleep 0.15; " +
                  "kill -TERM $pid; wait $pid; echo \"status=$?\"; cat " + log + ")");
  EXPECT_NE(interrupted.output.find("status=75"), std::string::npos) << interrupted.output;
  EXPECT_NE(interrupted.output.find("interrupted by SIGTERM in epoch 3"), std::string::npos) << interrupted.output;
  EXPECT_EQ(interrupted.output.find("\nepoch 3  loss"), std::string::npos) << interrupted.output;

  // Without --resume, an existing checkpoint is an error rather than overwritten.
  const auto refused = run_command(train + " --checkpoint-dir " + ckpt);
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_NE(refused.output.find("--resume"), std::string::npos) << refused.output;

  const auto resumed =
      run_command(train + " --checkpoint-dir " + ckpt + " --resume --save " + (dir / "resumed.safetensors").string());
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("\nepoch 5  loss"), std::string::npos) << resumed.output;
  EXPECT_EQ(resumed.output.find("\nepoch 2  loss"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("Resuming from " + ckpt + "/checkpoint.safetensors: epoch 3"), std::string::npos)
      << resumed.output;
  const std::string expected = read_bytes((dir / "whole.safetensors").string());
  ASSERT_GT(expected.size(), 800'000u);
  EXPECT_TRUE(read_bytes((dir / "resumed.safetensors").string()) == expected)
      << "the resumed run's weights differ from the uninterrupted run's";
  std::filesystem::remove_all(dir);
}

TEST(TrainCommand, LayersOptimizerAndValidationSplitDescribeAnotherModel) {
  const auto result = run_command(std::string(ACCEL_CLI_PATH) +
                                  " train --epochs 1 --threads 1 --device cpu --layers 784,128,64,10 --dropout 0.1 "
                                  "--optimizer sgd --momentum 0.9 --lr 0.05 --validation-split 0.1");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("784-128-64-10 MLP, dropout 0.10, SGD(lr=0.05)"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("validation accuracy 0."), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("\ntest accuracy 0."), std::string::npos) << result.output;
  const auto wrong_input = run_command(std::string(ACCEL_CLI_PATH) + " train --epochs 1 --layers 700,10");
  EXPECT_EQ(wrong_input.status, 1) << wrong_input.output;
  EXPECT_NE(wrong_input.output.find("train-images-idx3-ubyte"), std::string::npos) << wrong_input.output;
  EXPECT_NE(wrong_input.output.find("784 values per image"), std::string::npos) << wrong_input.output;
}

TEST(TrainCommand, PlotDrawsTheCurvesWithGnuplotOrFailsBeforeTraining) {
  const auto dir = std::filesystem::temp_directory_path() / ("accel_train_plot_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string train = std::string(ACCEL_CLI_PATH) + " train --threads 1 --device cpu";
  const std::string png = (dir / "curves.png").string();
  const auto drawn = run_command(train + " --epochs 2 --plot " + png);
  ASSERT_EQ(drawn.status, 0) << drawn.output;
  EXPECT_NE(drawn.output.find("plot: " + png), std::string::npos) << drawn.output;
  const std::string image = read_bytes(png);
  EXPECT_EQ(image.substr(0, 8), "\x89PNG\r\n\x1a\n");
  EXPECT_GT(image.size(), 10'000u);  // two panels of axes, labels and curves
  const std::string svg = (dir / "curves.svg").string();
  ASSERT_EQ(run_command(train + " --epochs 1 --validation-split 0.1 --plot " + svg).status, 0);
  const std::string drawing = read_bytes(svg);
  EXPECT_NE(drawing.find("<svg"), std::string::npos);
  EXPECT_NE(drawing.find("validation"), std::string::npos);  // the held-out curve's key
  EXPECT_NE(drawing.find("accuracy"), std::string::npos);
  // Found out before training, not after it.
  const auto gif = run_command(train + " --epochs 1 --plot " + (dir / "curves.gif").string());
  EXPECT_EQ(gif.status, 1) << gif.output;
  EXPECT_NE(gif.output.find(".png or .svg"), std::string::npos) << gif.output;
  EXPECT_EQ(gif.output.find("epoch 1"), std::string::npos) << gif.output;
  const auto no_gnuplot = run_command("PATH=/nonexistent " + train + " --epochs 1 --plot " + png);
  EXPECT_EQ(no_gnuplot.status, 1) << no_gnuplot.output;
  EXPECT_NE(no_gnuplot.output.find("apt-get install gnuplot-nox"), std::string::npos) << no_gnuplot.output;
  std::filesystem::remove_all(dir);
}
