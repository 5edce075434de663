// fit's callbacks (EarlyStopping, ModelCheckpoint, CSVLogger, LearningRateScheduler,
// TerminateOnNaN), the learning-rate schedules, and the progress line's pieces.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "accel/nn/layers.h"
#include "accel/ops/ops.h"
#include "accel/optim/schedulers.h"
#include "accel/tensor/safetensors.h"
#include "accel/train/callbacks.h"
#include "accel/train/progress_bar.h"

using namespace accel;

namespace {

struct Fixture {
  Tensor x, y;
  std::unique_ptr<train::Model> model;
  explicit Fixture(std::string optimizer = "adam", double lr = 1e-2) {
    Generator gen(5);
    x = randn({200, 6}, gen);
    y = from_vector(std::vector<std::int64_t>(200, 0), {200});
    auto labels = y.data_ptr<std::int64_t>();
    const auto values = x.to_vector<float>();
    for (int i = 0; i < 200; ++i) labels[i] = values[static_cast<std::size_t>(i) * 6] > 0 ? 1 : 0;
    Generator init(1);
    model = std::make_unique<train::Model>(
        nn::Sequential(nn::Linear(6, 8, true, init), nn::ReLU(), nn::Linear(8, 2, true, init)), kCPU);
    model->compile({.optimizer = optimizer, .learning_rate = lr, .metrics = {"accuracy"}});
  }
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("accel_cb_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

TEST(Callbacks, EarlyStoppingStopsWhenTheMonitoredLossStallsAndRestoresTheBest) {
  Fixture f("sgd", 0.0);  // a learning rate of 0: the loss never improves by min_delta
  auto stop = std::make_shared<train::EarlyStopping>(
      train::EarlyStoppingOptions{.monitor = "loss", .min_delta = 1e-3, .patience = 2, .restore_best_weights = true});
  const auto history = f.model->fit(f.x, f.y, {.epochs = 20, .batch_size = 50, .verbose = 0, .callbacks = {stop}});
  EXPECT_EQ(history.epoch.size(), 4u);  // best at 0, then 3 epochs without improvement > patience 2
  EXPECT_EQ(stop->best_epoch(), 0);
  EXPECT_EQ(stop->stopped_epoch(), 3);
  // An improving run never stops early.
  Fixture learning;
  auto patient = std::make_shared<train::EarlyStopping>(train::EarlyStoppingOptions{.monitor = "loss"});
  EXPECT_EQ(
      learning.model->fit(learning.x, learning.y, {.epochs = 5, .batch_size = 50, .verbose = 0, .callbacks = {patient}})
          .epoch.size(),
      5u);
  EXPECT_EQ(patient->stopped_epoch(), -1);
}

TEST(Callbacks, ModelCheckpointWritesEachEpochOrOnlyTheBest) {
  Fixture f;
  const std::string every = temp_path("w-{epoch:02d}.safetensors");
  auto each = std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{.filepath = every});
  auto best = std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{
      .filepath = temp_path("best.safetensors"), .monitor = "val_accuracy", .save_best_only = true});
  f.model->fit(f.x, f.y,
               {.epochs = 3, .batch_size = 50, .verbose = 0, .validation_split = 0.2, .callbacks = {each, best}});
  for (int e = 1; e <= 3; ++e) {
    EXPECT_TRUE(std::filesystem::exists(each->path_for(e))) << each->path_for(e);
    std::filesystem::remove(each->path_for(e));
  }
  EXPECT_EQ(each->path_for(7), temp_path("w-07.safetensors"));
  // The best file loads back into the model.
  f.model->load(temp_path("best.safetensors"));
  std::filesystem::remove(temp_path("best.safetensors"));
}

TEST(Callbacks, CsvLoggerWritesKerasColumns) {
  Fixture f;
  const std::string path = temp_path("log.csv");
  f.model->fit(f.x, f.y,
               {.epochs = 2,
                .batch_size = 50,
                .verbose = 0,
                .validation_split = 0.2,
                .callbacks = {std::make_shared<train::CSVLogger>(path)}});
  std::ifstream in(path);
  std::string header, row1, row2, extra;
  std::getline(in, header);
  std::getline(in, row1);
  std::getline(in, row2);
  EXPECT_EQ(header, "epoch,accuracy,loss,lr,val_accuracy,val_loss");
  EXPECT_EQ(row1.substr(0, 2), "0,");
  EXPECT_EQ(row2.substr(0, 2), "1,");
  EXPECT_EQ(std::count(row2.begin(), row2.end(), ','), 5);
  EXPECT_FALSE(std::getline(in, extra));
  std::filesystem::remove(path);
  EXPECT_THROW(
      f.model->fit(f.x, f.y, {.verbose = 0, .callbacks = {std::make_shared<train::CSVLogger>("/nonexistent/x.csv")}}),
      Error);
}

TEST(Callbacks, LearningRateSchedulerSetsEachEpochsRateEvenInACapturedStep) {
  const optim::StepLR schedule({.base_lr = 0.02, .step_size = 2, .gamma = 0.5});
  const auto run = [&](bool capture) {
    Fixture f;
    f.model->compile({.optimizer = "adam", .metrics = {"accuracy"}, .capture = capture});
    auto scheduler =
        std::make_shared<train::LearningRateScheduler>([&](int epoch, double) { return schedule.lr_at(epoch); });
    const auto history =
        f.model->fit(f.x, f.y, {.epochs = 5, .batch_size = 64, .verbose = 0, .callbacks = {scheduler}});
    EXPECT_EQ(f.model->step_mode().substr(0, 9), capture ? "captured:" : "eager: di") << f.model->step_mode();
    return std::make_pair(history.history.at("lr"), f.model->module().state_dict().at("0.weight").to_vector<float>());
  };
  const auto [lrs, eager_weights] = run(false);
  EXPECT_EQ(lrs, (std::vector<double>{0.02, 0.02, 0.01, 0.01, 0.005}));
  // Replay would keep the first rate unless the step is captured again: the weights say it was.
  EXPECT_EQ(run(true).second, eager_weights);
}

TEST(Callbacks, TerminateOnNaNStopsAtTheFirstNonFiniteLoss) {
  Fixture f("sgd", 1e20);  // diverges within a few steps
  auto guard = std::make_shared<train::TerminateOnNaN>();
  const std::string dir = temp_path("nan_ckpt");
  const auto history = f.model->fit(
      f.x, f.y, {.epochs = 50, .batch_size = 10, .verbose = 0, .callbacks = {guard}, .checkpoint_dir = dir});
  EXPECT_GE(guard->stopped_at_batch(), 0);
  EXPECT_EQ(history.epoch.size(), 1u);
  // The diverged weights are not written as a checkpoint to resume from.
  EXPECT_FALSE(std::filesystem::exists(dir + "/checkpoint.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/model.safetensors"));
  std::filesystem::remove_all(dir);
}

TEST(Schedulers, StepAndCosineFollowPyTorchsFormulas) {
  const optim::StepLR step({.base_lr = 1.0, .step_size = 3, .gamma = 0.1});
  EXPECT_DOUBLE_EQ(step.lr_at(2), 1.0);
  EXPECT_DOUBLE_EQ(step.lr_at(3), 0.1);
  EXPECT_NEAR(step.lr_at(7), 0.01, 1e-15);
  const optim::CosineAnnealingLR cosine({.base_lr = 1.0, .t_max = 10, .eta_min = 0.1});
  EXPECT_DOUBLE_EQ(cosine.lr_at(0), 1.0);
  EXPECT_NEAR(cosine.lr_at(5), 0.55, 1e-12);
  EXPECT_NEAR(cosine.lr_at(10), 0.1, 1e-12);
  EXPECT_NEAR(cosine.lr_at(12), 0.1, 1e-12);
  EXPECT_THROW(optim::StepLR({.step_size = 0}), ValueError);
  EXPECT_THROW(optim::CosineAnnealingLR({.t_max = 0}), ValueError);
}

TEST(ProgressBar, PiecesAreFormattedAsKerasFormatsThem) {
  using train::ProgressBar;
  EXPECT_EQ(ProgressBar::bar(1875, 1875), "[==============================]");
  EXPECT_EQ(ProgressBar::bar(0, 10), "[..............................]");
  EXPECT_EQ(ProgressBar::bar(5, 10), "[==============>...............]");
  EXPECT_EQ(ProgressBar::format_per_step(0.0015), "2ms/step");
  EXPECT_EQ(ProgressBar::format_per_step(0.000784), "784us/step");
  EXPECT_EQ(ProgressBar::format_per_step(2.2), "2s/step");
  EXPECT_EQ(ProgressBar::format_eta(65), "ETA: 1:05");
  EXPECT_EQ(ProgressBar::format_eta(3725), "ETA: 1:02:05");
  EXPECT_EQ(ProgressBar::format_value(0.49901), " 0.4990");
  EXPECT_EQ(ProgressBar::format_value(0.0001234), " 1.2340e-04");
}

TEST(ProgressBar, ATerminalSeesTheBarRedrawnInPlace) {
  std::FILE* file = std::tmpfile();
  train::ProgressBar bar(file, 1, true);
  bar.epoch_begin(0, 2, 10);
  bar.update(5, {{"loss", 0.5}});
  bar.epoch_end({{"loss", 0.25}, {"accuracy", 0.75}});
  train::ProgressBar quiet(file, 2, false);
  quiet.epoch_begin(1, 2, 10);
  quiet.epoch_end({{"loss", 0.125}});
  std::fflush(file);
  std::rewind(file);
  std::stringstream text;
  for (int c; (c = std::fgetc(file)) != EOF;) text << static_cast<char>(c);
  std::fclose(file);
  const std::string out = text.str();
  EXPECT_NE(out.find("Epoch 1/2\n\r 5/10 [==============>...............] - ETA: 0s - loss: 0.5000"), std::string::npos)
      << out;
  EXPECT_NE(out.find("\r10/10 [==============================] - 0s "), std::string::npos) << out;
  EXPECT_NE(out.find("loss: 0.2500 - accuracy: 0.7500\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Epoch 2/2\n10/10 - 0s - loss: 0.1250 - "), std::string::npos) << out;
}
