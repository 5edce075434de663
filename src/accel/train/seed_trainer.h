// The seed's workflow end to end: Fashion-MNIST, the 784-hidden-10 MLP, Adam, cross-entropy;
// one epoch at a time with its loss, time, throughput and test accuracy. `accel train`, the
// accuracy test and the benchmark all run this one routine.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "accel/core/device.h"
#include "accel/data/fashion_mnist.h"
#include "accel/nn/module.h"

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
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  std::uint64_t seed = 0;
  int threads = 0;                        // 0: tuned while training, up to hw::usable_cpus()
  std::string data_dir;                   // empty: Debian's dataset-fashion-mnist folder
  std::optional<double> memory_fraction;  // cap on the device's reserved memory (cuda, sim)
  // Non-empty: the trained weights are written there as safetensors, with the names of
  // PyTorch's nn.Sequential(Linear, ReLU, Linear) ("0.weight", ..., "2.bias").
  std::string save_path;
};

struct EpochStats {
  int epoch = 0;               // 1-based
  double train_loss = 0.0;     // mean of the epoch's batch losses
  double train_seconds = 0.0;  // the training loop alone (no evaluation, no loading)
  double samples_per_second = 0.0;
  double test_accuracy = 0.0;
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
  Device device;
  std::string device_note;  // why "auto" chose what it chose
  // "captured: N kernel calls replayed per step", or "eager: <why>".
  std::string step_mode;
  std::vector<EpochStats> epochs;
  MemoryReport memory;
};

// "auto" picks CUDA when a usable device exists, else the CPU; `note` says why.
Device resolve_device(const std::string& spec, std::string* note = nullptr);

// Fraction of correct argmax predictions over `data`, in batches, without autograd.
double evaluate_accuracy(nn::Module& model, const data::LabelledImages& data, Device device,
                         std::int64_t batch_size = 1000);

TrainReport train_seed_model(const SeedConfig& config, const std::function<void(const EpochStats&)>& on_epoch = {});

}  // namespace accel::train
