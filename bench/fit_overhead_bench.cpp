// What Model::fit costs over the bare training loop it runs: `--epochs` epochs of the seed's
// model on Fashion-MNIST at batch 64, (a) as a hand-written loop over train::CapturedStep (loss
// summed on the device, no host read per step), and (b) as
// model.fit(x, y, {.epochs = E, .batch_size = 64, .verbose = 0}), which adds the data checks
// before training, the accuracy metric in the step, History and the epoch's logs. The two
// alternate, each `--repeats` times, and the medians' ratio is fit's overhead.
//
//   fit_overhead_bench [--epochs 3] [--repeats 7] [--threads 1] [--data DIR]   -> one JSON line
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "accel/autograd/grad_mode.h"
#include "accel/backends/backend.h"
#include "accel/data/dataloader.h"
#include "accel/data/fashion_mnist.h"
#include "accel/nn/layers.h"
#include "accel/ops/ops.h"
#include "accel/optim/optimizer.h"
#include "accel/train/captured_step.h"
#include "accel/train/model.h"

using namespace accel;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

nn::Sequential seed_model() {
  Generator init(0);
  return nn::Sequential(nn::Linear(784, 256, true, init), nn::ReLU(), nn::Linear(256, 10, true, init));
}

// The bare loop, from building the model to each epoch's mean loss on the host.
double raw_epochs(const Tensor& x, const Tensor& y, int epochs) {
  const auto start = std::chrono::steady_clock::now();
  nn::Sequential model = seed_model();
  model.pack_parameters();
  optim::Adam optimizer(model.parameters(), {.lr = 1e-3});
  nn::CrossEntropyLoss criterion;
  data::DataLoader loader(x, y, {.batch_size = 64, .shuffle = true, .seed = 0});
  Tensor total = zeros({}, DType::Float64);
  train::CapturedStep step([&](const Tensor& inputs, const Tensor& labels) {
    optimizer.zero_grad();
    Tensor loss = criterion(model(inputs), labels);
    loss.backward();
    optimizer.step();
    return loss;
  });
  for (int epoch = 0; epoch < epochs; ++epoch) {
    for (std::size_t i = 0; i < loader.size(); ++i) {
      const data::Batch batch = loader.batch(i);
      const Tensor loss = step.run(batch.inputs, batch.labels);
      autograd::NoGradGuard no_grad;
      add_(total, loss.detach());
    }
    volatile double mean = total.item<double>() / static_cast<double>(loader.size());
    (void)mean;
    zero_(total);
    loader.next_epoch();
  }
  return seconds_since(start);
}

double fit_epochs(const Tensor& x, const Tensor& y, int epochs) {
  const auto start = std::chrono::steady_clock::now();
  train::Model model(seed_model(), kCPU);
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  model.fit(x, y, {.epochs = epochs, .batch_size = 64, .verbose = 0});
  return seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) try {
  int repeats = 7, threads = 1, epochs = 3;
  std::string data_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--repeats")) repeats = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--epochs")) epochs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--data")) data_dir = argv[i + 1];
  }
  set_num_threads(threads);
  const auto train_set = data::load_fashion_mnist(data_dir, true);
  const Tensor x = train_set.images.to(DType::Float32) / 255.0;
  std::vector<double> raw, fit;
  raw_epochs(x, train_set.labels, 1);  // warm-up: page faults, oneDNN's primitive cache
  for (int r = 0; r < repeats; ++r) {
    raw.push_back(raw_epochs(x, train_set.labels, epochs));
    fit.push_back(fit_epochs(x, train_set.labels, epochs));
  }
  std::printf(
      "{\"bench\": \"fit_overhead\", \"batch_size\": 64, \"epochs\": %d, \"threads\": %d, \"repeats\": %d, "
      "\"raw_s\": %.4f, \"fit_s\": %.4f, \"fit_over_raw\": %.4f}\n",
      epochs, threads, repeats, median(raw), median(fit), median(fit) / median(raw));
  return 0;
} catch (const Error& e) {
  std::fprintf(stderr, "fit_overhead_bench: %s\n", e.what());
  return 1;
}
