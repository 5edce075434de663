// train::Model: Keras's compile/fit/evaluate/predict. The seed's Keras snippet on the real
// Fashion-MNIST, the progress line, History, validation, the checks that run before training,
// and resuming after SIGTERM bit for bit.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "accel/data/dataloader.h"
#include "accel/data/fashion_mnist.h"
#include "accel/nn/layers.h"
#include "accel/ops/ops.h"
#include "accel/tensor/safetensors.h"
#include "accel/train/callbacks.h"
#include "accel/train/model.h"
#include "accel/train/training_checkpoint.h"

using namespace accel;

namespace {

// Everything written to a FILE*, as a string (fit's progress goes to FitOptions::out).
class CapturedOutput {
 public:
  CapturedOutput() : file_(std::tmpfile()) {}
  ~CapturedOutput() { std::fclose(file_); }
  std::FILE* file() const { return file_; }
  std::string text() const {
    std::fflush(file_);
    std::rewind(file_);
    std::string out;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, file_)) > 0;) out.append(buffer, n);
    return out;
  }

 private:
  std::FILE* file_;
};

std::unique_ptr<train::Model> small_model(std::uint64_t seed = 3, std::int64_t in = 12, std::int64_t classes = 4) {
  Generator init(seed);
  return std::make_unique<train::Model>(
      nn::Sequential(nn::Linear(in, 16, true, init), nn::ReLU(), nn::Linear(16, classes, true, init)), kCPU);
}

// A learnable problem: the class is which quarter of the inputs has the largest sum.
struct Problem {
  Tensor x, y;
  explicit Problem(std::int64_t n = 600, std::uint64_t seed = 11) {
    Generator gen(seed);
    x = randn({n, 12}, gen);
    const auto values = x.to_vector<float>();
    std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      float best = -1e30f;
      for (int q = 0; q < 4; ++q) {
        const float s = values[i * 12 + q * 3] + values[i * 12 + q * 3 + 1] + values[i * 12 + q * 3 + 2];
        if (s > best) best = s, labels[static_cast<std::size_t>(i)] = q;
      }
    }
    y = from_vector(labels, {n});
  }
};

std::vector<float> flat_weights(train::Model& model) {
  std::vector<float> all;
  for (const auto& [name, t] : model.module().state_dict()) {
    const auto v = t.to(kCPU).to_vector<float>();
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

// Sends this process a real SIGTERM after batch `batch` (from 0) of epoch `epoch` (from 0), as a
// scheduler would; fit's handler takes it.
class SigtermAt : public train::Callback {
 public:
  SigtermAt(int epoch, std::int64_t batch) : at_epoch_(epoch), at_batch_(batch) {}
  void on_epoch_begin(train::Model&, int epoch) override { epoch_ = epoch; }
  bool wants_batch_loss() const override { return true; }
  void on_batch_end(train::Model&, std::int64_t batch, double) override {
    if (epoch_ == at_epoch_ && batch == at_batch_) std::raise(SIGTERM);
  }

 private:
  int at_epoch_, epoch_ = -1;
  std::int64_t at_batch_;
};

std::string fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("accel_model_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

}  // namespace

// The 5-epoch run to 0.87 is examples/keras_fit.cpp's ctest; here one epoch of the same code
// checks the line's form, History and predict.
TEST(ModelFit, TheSeedsKerasSnippetTrainsFashionMnistAndPrintsKerasProgressLine) {
  const auto train_set = data::load_fashion_mnist("", true);
  const auto test_set = data::load_fashion_mnist("", false);
  train::Model model(nn::Sequential(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 10)), kCPU);
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  CapturedOutput out;
  const train::History history = model.fit(train_set.images.to(DType::Float32) / 255.0, train_set.labels,
                                           {.epochs = 1, .batch_size = 32, .out = out.file()});
  const std::string text = out.text();
  std::cout << text;
  // Not a terminal: the epoch's final line, as Keras prints it.
  const std::regex line(
      R"(^Epoch 1/1\n1875/1875 \[={30}\] - \d+s \d+(us|ms)/step - loss: 0\.\d{4} - accuracy: 0\.\d{4}\n$)");
  EXPECT_TRUE(std::regex_search(text, line)) << text;
  ASSERT_EQ(history.epoch, (std::vector<int>{0}));
  EXPECT_GT(history.history.at("accuracy").back(), 0.8);
  const train::Logs test = model.evaluate(test_set.images.to(DType::Float32) / 255.0, test_set.labels);
  EXPECT_GT(test.at("accuracy"), 0.8);
  // predict gives the logits evaluate scored: their argmax has evaluate's accuracy.
  const Tensor logits = model.predict(test_set.images.to(DType::Float32) / 255.0, 1000);
  ASSERT_EQ(logits.shape(), (Shape{10000, 10}));
  const double correct = sum(eq(argmax(logits, 1), test_set.labels)).item<double>();
  EXPECT_DOUBLE_EQ(correct / 10000.0, test.at("accuracy"));
}

TEST(ModelFit, HistoryHoldsEveryLogAndValidationSplitHoldsOutTheLastSamples) {
  const Problem data(500);
  auto model = small_model();
  model->compile({.optimizer = "adam", .learning_rate = 1e-2, .metrics = {"accuracy"}});
  const auto history =
      model->fit(data.x, data.y, {.epochs = 3, .batch_size = 50, .verbose = 0, .validation_split = 0.2});
  for (const char* key : {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}) {
    ASSERT_EQ(history.history.at(key).size(), 3u) << key;
  }
  // The held-out samples are the last 100, so evaluating them gives the last val_ values.
  const auto held_out = model->evaluate(data.x.slice(0, 400, 500), data.y.slice(0, 400, 500), 50);
  EXPECT_DOUBLE_EQ(held_out.at("loss"), history.history.at("val_loss").back());
  EXPECT_DOUBLE_EQ(held_out.at("accuracy"), history.history.at("val_accuracy").back());
  EXPECT_GT(history.history.at("val_accuracy").back(), 0.5);
  EXPECT_EQ(history.history.at("lr").back(), 1e-2);
}

TEST(ModelFit, CapturedAndEagerStepsTrainTheSameWeights) {
  const Problem data(300);
  const auto run = [&](bool capture) {
    auto model = small_model();
    model->compile({.optimizer = "adam", .metrics = {"accuracy"}, .capture = capture});
    const auto history = model->fit(data.x, data.y, {.epochs = 2, .batch_size = 32, .verbose = 0});
    return std::make_pair(flat_weights(*model), history.history.at("loss"));
  };
  const auto eager = run(false), captured = run(true);
  EXPECT_EQ(eager.first, captured.first);
  EXPECT_EQ(eager.second, captured.second);
}

TEST(ModelFit, PrefetchingAndASimulatedDeviceTrainTheSameWeights) {
  const Problem data(300);
  std::string mode;
  const auto run = [&](Device device, int prefetch, train::DeviceData placement = train::DeviceData::Automatic) {
    Generator init(3);
    train::Model model(nn::Sequential(nn::Linear(12, 16, true, init), nn::ReLU(), nn::Linear(16, 4, true, init)),
                       device);
    model.compile({.metrics = {"accuracy"}});
    const auto history = model.fit(
        data.x, data.y,
        {.epochs = 3, .batch_size = 32, .verbose = 0, .device_data = placement, .prefetch_batches = prefetch});
    mode = model.data_mode();
    return std::make_pair(flat_weights(model), history.history.at("accuracy"));
  };
  const auto plain = run(kCPU, 0);
  EXPECT_EQ(mode, "on the host: each batch gathered by the step's threads");
  EXPECT_EQ(run(kCPU, 3), plain);  // a background thread gathers the same batches
  EXPECT_EQ(mode, "on the host: a thread gathers 3 batches ahead");
  // The simulated device (CPU kernels): by default the data set is kept on it and each batch
  // gathered there (data/device_batches.h); staged, each batch goes through pinned buffers and
  // the copy stream (data/staged_batches.h).
  EXPECT_EQ(run(Device("sim"), -1), plain);
  EXPECT_EQ(mode, "resident on the device: each batch gathered there");
  EXPECT_EQ(run(Device("sim"), -1, train::DeviceData::Staged), plain);
  EXPECT_EQ(mode, "staged: pinned host buffers copied on a copy stream, 3 ahead");
  EXPECT_EQ(run(Device("sim"), 0, train::DeviceData::Staged), plain);
  EXPECT_EQ(mode, "staged: pinned host buffers copied on a copy stream, 1 ahead");
}

// uint8 images train as the DataLoader scales them (pixel / 255, torchvision's ToTensor), the
// same weights as the images scaled beforehand, wherever the batches come from.
TEST(ModelFit, Uint8ImagesTrainAsTheirScaledPixels) {
  Generator gen(9);
  const Tensor images = rand({90, 12}, gen, 0.0, 255.0).to(DType::UInt8);
  const Tensor labels = randint(0, 4, {90}, gen);
  const auto run = [&](const Tensor& x, Device device, train::DeviceData placement) {
    Generator init(3);
    train::Model model(nn::Sequential(nn::Linear(12, 8, true, init), nn::ReLU(), nn::Linear(8, 4, true, init)), device);
    model.compile({.metrics = {"accuracy"}});
    const auto history = model.fit(
        x, labels, {.epochs = 2, .batch_size = 16, .verbose = 0, .validation_split = 0.2, .device_data = placement});
    return std::make_pair(flat_weights(model), history.history.at("val_loss"));
  };
  const auto scaled = run(data::scale_pixels(images), kCPU, train::DeviceData::Automatic);
  EXPECT_EQ(run(images, kCPU, train::DeviceData::Automatic), scaled);
  EXPECT_EQ(run(images, Device("sim"), train::DeviceData::Resident), scaled);
  EXPECT_EQ(run(images, Device("sim"), train::DeviceData::Staged), scaled);
}

TEST(ModelFit, BadDataFailsBeforeTheFirstStepNamingTheProblem) {
  const Problem data(100);
  auto model = small_model();
  model->compile({.metrics = {"accuracy"}});
  const auto before = flat_weights(*model);
  const auto fails = [&](const Tensor& x, const Tensor& y, const std::string& expected,
                         train::FitOptions options = {}) {
    options.verbose = 0;
    try {
      model->fit(x, y, options);
      ADD_FAILURE() << "fit accepted data that should fail with: " << expected;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
    EXPECT_EQ(flat_weights(*model), before) << "a failed fit changed the weights (" << expected << ")";
  };
  fails(data.x, data.y.slice(0, 0, 99), "x has 100 samples");
  fails(data.x.slice(1, 0, 11), data.y, "cannot take samples of shape [100, 11]");
  fails(data.x, add(data.y, 3.0).to(DType::Int64), "outside the model's 4 classes");
  fails(data.x, data.y.to(DType::Float32), "takes class indices");
  fails(zeros({0, 12}), zeros({0}, DType::Int64), "has no samples");
  Tensor with_nan = data.x.clone();
  with_nan.data_ptr<float>()[5 * 12 + 3] = std::nanf("");
  fails(with_nan, data.y, "sample 5");
  fails(data.x, data.y, "not both", {.validation_split = 0.1, .validation_data = std::make_pair(data.x, data.y)});
  fails(data.x, data.y, "validation_data: x has 100 samples",
        {.validation_data = std::make_pair(data.x, data.y.slice(0, 0, 10))});
  fails(data.x, data.y, "val_loss",
        {.callbacks = {std::make_shared<train::EarlyStopping>(train::EarlyStoppingOptions{})}});
  EXPECT_THROW(model->compile({.optimizer = "rmsprop"}), ValueError);
  EXPECT_THROW(model->compile({.loss = "hinge"}), ValueError);
  EXPECT_THROW(model->compile({.loss = "mse", .metrics = {"accuracy"}}), ValueError);
}

TEST(ModelFit, OtherLossesTrainToo) {
  const Problem data(300);
  auto model = small_model();
  // One-hot targets with categorical_crossentropy.
  std::vector<float> one_hot(300 * 4, 0.0f);
  const auto labels = data.y.to_vector<std::int64_t>();
  for (std::size_t i = 0; i < labels.size(); ++i) one_hot[i * 4 + static_cast<std::size_t>(labels[i])] = 1.0f;
  model->compile(
      {.optimizer = "sgd", .learning_rate = 0.1, .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  const auto history =
      model->fit(data.x, from_vector(one_hot, {300, 4}), {.epochs = 5, .batch_size = 30, .verbose = 0});
  EXPECT_LT(history.history.at("loss").back(), history.history.at("loss").front());
  // Regression with mse: the targets are the inputs' first four sums.
  auto regression = small_model();
  regression->compile({.learning_rate = 1e-2, .loss = "mse"});
  const Tensor targets = data.x.slice(1, 0, 4).contiguous();
  const auto fitted = regression->fit(data.x, targets, {.epochs = 10, .batch_size = 30, .verbose = 0});
  EXPECT_LT(fitted.history.at("loss").back(), 0.5 * fitted.history.at("loss").front());
  EXPECT_THROW(regression->fit(data.x, data.y, {.verbose = 0}), DTypeError);
  Tensor nan_target = targets.clone();
  nan_target.data_ptr<float>()[7] = std::nanf("");
  EXPECT_THROW(regression->fit(data.x, nan_target, {.verbose = 0}), DataError);  // targets are checked too
}

TEST(ModelFit, SigtermMidEpochThenResumeEndsWithTheSameWeightsBitForBit) {
  const Problem data(640);
  const train::FitOptions base{.epochs = 5, .batch_size = 32, .verbose = 0, .validation_split = 0.25};
  // Uninterrupted.
  auto reference = small_model();
  reference->compile({.metrics = {"accuracy"}});
  const auto expected_history = reference->fit(data.x, data.y, base);
  const auto expected = flat_weights(*reference);

  // SIGTERM arrives in epoch 3 (index 2), after its 4th batch: fit finishes that step, writes
  // the checkpoint and throws.
  const std::string dir = fresh_dir("resume");
  train::FitOptions options = base;
  options.checkpoint_dir = dir;
  auto first = small_model();
  first->compile({.metrics = {"accuracy"}});
  options.callbacks = {std::make_shared<SigtermAt>(2, 3)};
  try {
    first->fit(data.x, data.y, options);
    FAIL() << "fit ignored SIGTERM";
  } catch (const train::TrainingInterrupted& e) {
    EXPECT_EQ(e.checkpoint(), dir + "/checkpoint.safetensors");
    EXPECT_NE(std::string(e.what()).find("epoch 3 after batch 4"), std::string::npos) << e.what();
  }
  const auto saved = train::load_training_checkpoint(dir);
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->epoch, 2);
  EXPECT_EQ(saved->next_batch, 4);
  // model.safetensors beside it holds the weights alone, for PyTorch.
  EXPECT_EQ(load_safetensors(dir + "/model.safetensors").tensors.size(), 4u);

  // A new process would build the same model afresh (other initial weights do not matter).
  auto resumed = small_model(99);
  resumed->compile({.metrics = {"accuracy"}});
  options.callbacks.clear();
  const auto history = resumed->fit(data.x, data.y, options);
  EXPECT_EQ(flat_weights(*resumed), expected);
  EXPECT_EQ(history.history, expected_history.history);
  EXPECT_EQ(history.epoch, expected_history.epoch);
  // Resuming a finished run does nothing more.
  const auto again = resumed->fit(data.x, data.y, options);
  EXPECT_EQ(flat_weights(*resumed), expected);
  EXPECT_EQ(again.history, expected_history.history);
  std::filesystem::remove_all(dir);
}

// Dropout draws its masks from the global generator's counters and a schedule of the current
// rate compounds: both must come back from the checkpoint for the resumed run to match.
TEST(ModelFit, DropoutAndAScheduleResumeBitForBitToo) {
  const Problem data(640);
  const auto make = [] {
    Generator init(3);
    return std::make_unique<train::Model>(
        nn::Sequential(nn::Linear(12, 16, true, init), nn::ReLU(), nn::Dropout(0.3), nn::Linear(16, 4, true, init)),
        kCPU);
  };
  const auto halving = [] {
    return std::make_shared<train::LearningRateScheduler>(
        [](int epoch, double lr) { return epoch > 0 ? lr * 0.5 : lr; });
  };
  train::FitOptions options{.epochs = 4, .batch_size = 32, .verbose = 0};
  manual_seed(5);
  auto reference = make();
  reference->compile({.learning_rate = 1e-2, .metrics = {"accuracy"}});
  options.callbacks = {halving()};
  const auto expected_history = reference->fit(data.x, data.y, options);
  const auto expected = flat_weights(*reference);

  const std::string dir = fresh_dir("dropout");
  options.checkpoint_dir = dir;
  manual_seed(5);
  auto first = make();
  first->compile({.learning_rate = 1e-2, .metrics = {"accuracy"}});
  options.callbacks = {halving(), std::make_shared<SigtermAt>(2, 6)};
  EXPECT_THROW(first->fit(data.x, data.y, options), train::TrainingInterrupted);
  manual_seed(77);  // a fresh process's generator: the checkpoint's state replaces it
  auto resumed = make();
  resumed->compile({.learning_rate = 1e-2, .metrics = {"accuracy"}});
  options.callbacks = {halving()};
  const auto history = resumed->fit(data.x, data.y, options);
  EXPECT_EQ(history.history.at("lr"), (std::vector<double>{1e-2, 5e-3, 2.5e-3, 1.25e-3}));
  EXPECT_EQ(history.history, expected_history.history);
  EXPECT_EQ(flat_weights(*resumed), expected);
  // Another batch size would count the saved position in other batches: refused.
  options.batch_size = 64;
  options.epochs = 6;
  try {
    resumed->fit(data.x, data.y, options);
    ADD_FAILURE() << "a checkpoint made at batch size 32 was resumed at 64";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("batch size 32"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(ModelFit, ADamagedOrForeignCheckpointIsATypedErrorNamingTheFile) {
  const Problem data(64);
  const std::string dir = fresh_dir("damaged");
  std::filesystem::create_directories(dir);
  { std::ofstream(dir + "/checkpoint.safetensors") << "not a checkpoint"; }
  auto model = small_model();
  model->compile({});
  try {
    model->fit(data.x, data.y, {.verbose = 0, .checkpoint_dir = dir});
    FAIL() << "a damaged checkpoint was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/checkpoint.safetensors"), std::string::npos) << e.what();
  }
  // A checkpoint of another model (other widths) names the file and the mismatch.
  auto other = small_model(3, 12, 6);
  other->compile({});
  Tensor six_classes = data.y.clone();
  other->fit(data.x, six_classes, {.verbose = 0, .checkpoint_dir = dir, .resume = false});
  try {
    model->fit(data.x, data.y, {.verbose = 0, .checkpoint_dir = dir});
    FAIL() << "another model's checkpoint was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit this run"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}
