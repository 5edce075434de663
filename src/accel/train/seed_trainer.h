// The seed's workflow end to end: Fashion-MNIST, the 784-hidden-10 MLP, Adam, cross-entropy;
// one epoch at a time with its loss, time, throughput and test accuracy. `accel train`, the
// accuracy test and the benchmark all run this one routine, which is Model::fit (train/model.h)
// with the seed's defaults; the flags describe other MLPs and optimizers.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "accel/core/device.h"
#include "accel/data/fashion_mnist.h"
#include "accel/nn/module.h"
#include "accel/train/model.h"
#include "accel/train/resolve_device.h"

namespace accel::train {

struct SeedConfig {
  int epochs = 5;
  std::int64_t batch_size = 64;
  // Micro-batches per optimizer step: the gradients of `accumulate` batches of batch_size are
  // summed, each loss divided by `accumulate` (a step over accumulate x batch_size samples in the
  // activation memory of one batch; the last step of an epoch may take fewer).
  int accumulate = 1;
  // Mixed precision: "off", "bf16" or "fp16" (amp::Autocast around forward and loss; float32
  // parameters, gradients and Adam; fp16 adds an amp::GradScaler, as PyTorch's recipe does).
  std::string amp = "off";
  // Record one step and replay it for the others (train/captured_step.h); false: every step
  // eager. Falls back to eager, saying why, when the step cannot be replayed.
  bool capture = true;
  double lr = 1e-3;
  std::int64_t hidden = 256;
  // Every layer's width, input first (784,512,128,10): replaces `hidden`. The first must be the
  // data's width, the last at least the number of classes.
  std::vector<std::int64_t> layers;
  double dropout = 0.0;                // nn::Dropout(p) after each hidden ReLU (0: none)
  std::string optimizer = "adam";      // adam | adamw | sgd
  double momentum = 0.0;               // sgd
  std::optional<double> weight_decay;  // default: each optimizer's (adamw 1e-2, else 0)
  // > 0: this last fraction of the training images is held out, its accuracy reported each epoch,
  // and the test set evaluated once at the end.
  double validation_split = 0.0;
  // Non-empty: fit's checkpoint folder (every epoch and at SIGTERM, see train/model.h). A folder
  // holding a checkpoint is an error unless `resume`, which carries on from it.
  std::string checkpoint_dir;
  bool resume = false;
  int verbose = 0;              // fit's progress: 0 none (the caller prints each epoch), 1 Keras's bar, 2 its line
  std::string device = "auto";  // auto | cpu | cuda | cuda:N | sim[:N] | xla | tpu (train/xla_strategy.h)
  // XLA devices: the PJRT plugin (a path or cpu/tpu/cuda; empty: xla::find_plugin's default) and
  // how many of its devices train as data-parallel replicas (0: all).
  std::string pjrt_plugin;
  int replicas = 1;
  std::uint64_t seed = 0;
  int threads = 0;  // 0: tuned while training, up to hw::usable_cpus()
  // A folder of IDX files (empty: Debian's dataset-fashion-mnist), an .npz in Keras's layout, or
  // a training .csv with test_data the test set's (data/train_test_data.h).
  std::string data_dir;
  std::string test_data;
  std::optional<double> memory_fraction;  // cap on the device's reserved memory (cuda, sim)
  std::string device_data = "auto";       // auto | resident | staged: where a device's batches come from (FitOptions)
  // Non-empty: the trained weights are written there as safetensors, with the names of
  // PyTorch's nn.Sequential(Linear, ReLU, Linear) ("0.weight", ..., "2.bias").
  std::string save_path;
};

struct EpochStats {
  int epoch = 0;               // 1-based
  double train_loss = 0.0;     // mean of the epoch's batch losses
  double train_seconds = 0.0;  // the training loop alone (no evaluation, no loading)
  double samples_per_second = 0.0;
  double test_accuracy = 0.0;  // of the held-out set (TrainReport::held_out)
  double test_loss = 0.0;
  int threads = 0;     // the thread count the epoch ended with
  bool tuned = false;  // chosen by the ThreadTuner (--threads 0)
};

// Memory the run used on its device: the caching allocator's peaks on cuda and sim devices,
// the host allocator's peak (no reserve) on the CPU.
struct MemoryReport {
  std::int64_t peak_allocated = 0;
  std::optional<std::int64_t> peak_reserved;
  std::string summary;  // memory_summary() of cuda/sim devices
};

struct TrainReport {
  Device device;            // where the module's tensors are: the CPU for an XLA device
  std::string device_text;  // what the run trained on, as printed: "cpu", "cuda:0", "xla:0 (PJRT cpu plugin, ...)"
  std::string device_note;  // why "auto" chose what it chose
  // "captured: N kernel calls replayed per step", or "eager: <why>".
  std::string step_mode;
  std::string data_mode;  // where the batches came from (Model::data_mode); empty on XLA
  std::vector<EpochStats> epochs;
  MemoryReport memory;
  std::string model;                          // "784-256-10 MLP"
  std::string held_out = "test";              // what each epoch's accuracy is of: "test" or "validation"
  std::optional<double> final_test_accuracy;  // with a validation split: the test set's, at the end
  std::string resumed_from;                   // "<checkpoint>: epoch E, batch B" when --resume found one
  History history;                            // fit's: every epoch, those before a resume included
};

// Fraction of correct argmax predictions over `data`, in batches, without autograd.
double evaluate_accuracy(nn::Module& model, const data::LabelledImages& data, Device device,
                         std::int64_t batch_size = 1000);

// Throws what Model::fit throws, TrainingInterrupted included (SIGTERM with a checkpoint_dir).
// on_ready: called once the data is loaded and the model built, before the first step, with
// the report so far (device, model).
TrainReport train_seed_model(const SeedConfig& config, const std::function<void(const EpochStats&)>& on_epoch = {},
                             const std::function<void(const TrainReport&)>& on_ready = {});

// The model's widths for `config` and data of `features` inputs and `classes` classes:
// config.layers, or {features, hidden, classes}. Throws ValueError naming `data_file` when they
// do not fit the data.
std::vector<std::int64_t> seed_layers(const SeedConfig& config, std::int64_t features, std::int64_t classes,
                                      const std::string& data_file);

}  // namespace accel::train
