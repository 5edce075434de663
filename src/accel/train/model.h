// Model: Keras's compile / fit / evaluate / predict over an nn::Module, with Keras's names and
// defaults, on any device. The seed's TensorFlow snippet in accel:
//
//   train::Model model(nn::Sequential(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 10)));
//   model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
//   train::History history = model.fit(x_train, y_train, {.epochs = 5, .batch_size = 32});
//
// Differences from Keras, on purpose: models end in logits and the cross-entropy losses apply
// the softmax themselves (PyTorch's convention, and the stable one), so there is no softmax
// layer; float x is taken as it is, but uint8 x is images: each pixel / 255 (torchvision's
// ToTensor, what the seed does by hand), as accel's DataLoader takes uint8. Keras would cast
// uint8 to float32 unscaled: convert non-image uint8 data (codes, counts) to float32 first.
//
// fit validates the whole data set before the first step (shapes, dtypes, NaN/inf, the label
// range against the model's output), runs the step through train::CapturedStep (recorded once,
// replayed after), keeps the epoch's loss and accuracy on the device (no host read per step),
// and with a checkpoint_dir survives preemption: see FitOptions::checkpoint_dir.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "accel/amp/grad_scaler.h"
#include "accel/core/error.h"
#include "accel/core/exit_codes.h"
#include "accel/nn/module.h"
#include "accel/optim/optimizer.h"

namespace accel::train {

class Callback;
class XlaStrategy;
class XlaRunner;

// An epoch's results by name: "loss", "accuracy", "val_loss", "val_accuracy", "lr".
using Logs = std::map<std::string, double>;

// Keras's History: history["loss"][e] is epoch e's mean training loss (e from 0).
struct History {
  std::vector<int> epoch;
  std::map<std::string, std::vector<double>> history;
};

// loss(output, target) -> a scalar; nn::CrossEntropyLoss and nn::MSELoss fit.
using LossFn = std::function<Tensor(const Tensor& output, const Tensor& target)>;

struct CompileOptions {
  // By name: "adam", "adamw" or "sgd", with Keras's learning rates (adam, adamw: 1e-3; sgd:
  // 1e-2) unless learning_rate is set. Ignored when compile() is given an optimizer object.
  std::string optimizer = "adam";
  std::optional<double> learning_rate{};
  // "sparse_categorical_crossentropy" (int64 class indices [N]), "categorical_crossentropy"
  // (one-hot or soft float32 targets [N, C]), "mse" / "mean_squared_error" (float32 targets).
  std::string loss = "sparse_categorical_crossentropy";
  std::vector<std::string> metrics{};  // "accuracy"
  // Mixed precision: "off", "bf16" or "fp16" (fp16 adds loss scaling), as `accel train --amp`.
  std::string amp = "off";
  // Record the step once and replay it (train/captured_step.h); false: every step eager.
  bool capture = true;
  // Keras 3's name: the gradients of this many batches (each loss divided by the count) make
  // one optimizer step, in the activation memory of one batch. Such steps run eagerly.
  int gradient_accumulation_steps = 1;
};

enum class DeviceData { Automatic, Resident, Staged };

struct FitOptions {
  int epochs = 1;
  std::int64_t batch_size = 32;
  // 0: silent; 1: Keras's progress bar on a terminal, its final line per epoch otherwise;
  // 2: one line per epoch without the bar.
  int verbose = 1;
  // The last fraction of x and y (before shuffling, as Keras takes it) held out for validation.
  double validation_split = 0.0;
  std::optional<std::pair<Tensor, Tensor>> validation_data{};
  std::optional<std::int64_t> validation_batch_size{};  // default: batch_size
  bool shuffle = true;
  std::uint64_t seed = 0;  // the shuffling order's seed
  std::vector<std::shared_ptr<Callback>> callbacks{};
  // Non-empty: fit keeps DIR/checkpoint.safetensors (weights, optimizer, loss scaler, data
  // order, random state with dropout's counters, the epoch so far, the history; not callbacks'
  // own state, which EarlyStopping and ModelCheckpoint rebuild from the history) and
  // DIR/model.safetensors (the weights alone, for PyTorch), both written atomically at the end
  // of every epoch; with `resume`, fit carries on from DIR's checkpoint when there is one. While
  // it runs, SIGTERM (what a scheduler sends before preemption) makes fit finish the current
  // step, write the checkpoint and throw TrainingInterrupted. A checkpoint made with another
  // batch size, accumulation or number of training samples is refused (DataError).
  std::string checkpoint_dir{};
  bool resume = true;
  std::FILE* out = stdout;  // where the progress goes
  // Pick the CPU thread count while training by timing steps (train/thread_tuner.h), up to the
  // CPUs this process may use; false: leave set_num_threads as it is.
  bool tune_threads = false;
  // Where a device's batches come from (ignored on the CPU). Resident: the data set is copied
  // to the device once and each batch gathered there by a kernel (data/device_batches.h).
  // Staged: a loader thread writes each batch to pinned host memory, copied to the device on a
  // copy stream while earlier steps run (data/staged_batches.h). Automatic: Resident when the
  // set takes at most a quarter of the device's free memory, else Staged.
  DeviceData device_data = DeviceData::Automatic;
  // Batches a background thread assembles ahead of the step. On the CPU (data/
  // batch_prefetcher.h) -1 means none: the step's threads use every core and the gather takes
  // ~2% of a step. Staged on a device, the pinned buffers in flight: -1 means 3, 0 means 1.
  int prefetch_batches = -1;
};

// fit stopped at SIGTERM after writing a checkpoint; `accel train` exits with kExitCode.
class TrainingInterrupted : public Error {
 public:
  static constexpr int kExitCode = kExitCheckpointed;  // 75, EX_TEMPFAIL: try again (with --resume)
  TrainingInterrupted(const std::string& checkpoint, int epoch, std::int64_t batch)
      : Error("training interrupted by SIGTERM in epoch " + std::to_string(epoch + 1) + " after batch " +
              std::to_string(batch) + "; checkpoint written to " + checkpoint + " (resume from it)"),
        checkpoint_(checkpoint) {}
  const std::string& checkpoint() const { return checkpoint_; }

 private:
  std::string checkpoint_;
};

class Model {
 public:
  explicit Model(std::shared_ptr<nn::Module> module, std::optional<Device> device = std::nullopt);
  // Takes a module by value: Model(nn::Sequential(...)). Without a device: CUDA when usable,
  // else the CPU (train::resolve_device("auto")).
  template <typename M>
  requires std::is_base_of_v<nn::Module, std::decay_t<M>>
  explicit Model(M&& module, std::optional<Device> device = std::nullopt)
      : Model(std::make_shared<std::decay_t<M>>(std::forward<M>(module)), device) {}
  // On an XLA device (TPU, or any PJRT plugin's): fit, evaluate and predict run as whole compiled
  // programs (train/xla_strategy.h), replicated over the strategy's devices. The module stays on
  // the CPU and holds the trained weights after every epoch.
  Model(std::shared_ptr<nn::Module> module, const XlaStrategy& strategy);
  template <typename M>
  requires std::is_base_of_v<nn::Module, std::decay_t<M>> Model(M&& module, const XlaStrategy& strategy)
      : Model(std::make_shared<std::decay_t<M>>(std::forward<M>(module)), strategy) {}
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  void compile(CompileOptions options);
  // With an optimizer over module().parameters() and a loss object (options.optimizer is
  // ignored, options.loss names the loss in logs only); a null loss: the one options.loss names
  // (what an XLA device needs: its programs emit the loss by name).
  void compile(std::shared_ptr<optim::Optimizer> optimizer, LossFn loss, CompileOptions options = {});

  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  // "loss" and the compiled metrics over (x, y), without autograd.
  Logs evaluate(const Tensor& x, const Tensor& y, std::int64_t batch_size = 32);
  // The model's outputs for x, on the CPU, in batches, without autograd.
  Tensor predict(const Tensor& x, std::int64_t batch_size = 32);

  // The weights as safetensors with the module's names (PyTorch: load_file + load_state_dict).
  void save(const std::string& path) const;
  void load(const std::string& path);

  nn::Module& module() { return *module_; }
  // Where the module's tensors live: the CPU for a model on an XLA device (see xla_strategy()).
  Device device() const { return device_; }
  const XlaStrategy* xla_strategy() const { return xla_.get(); }
  // "cuda:0", "cpu", or the XLA strategy's description.
  std::string device_description() const;
  optim::Optimizer& optimizer();
  // Sets the optimizer's learning rate; a captured step is recorded again.
  void set_learning_rate(double lr);
  double learning_rate();
  // The names fit's logs will hold: loss, the metrics, and val_ of each with validation.
  std::vector<std::string> log_names(bool validation) const;
  // Seconds each epoch of the last fit spent in its steps (no validation, no checkpoint).
  const std::vector<double>& epoch_seconds() const { return epoch_seconds_; }
  // Samples each epoch of the last fit trained in this process (fewer in an epoch it resumed).
  const std::vector<std::int64_t>& epoch_samples() const { return epoch_samples_; }
  // How the last fit ran its steps: "captured: N kernel calls replayed per step", or "eager: <why>".
  const std::string& step_mode() const { return step_mode_; }
  // Where the last fit's batches came from ("resident on the device: ...", "staged: ...").
  const std::string& data_mode() const { return data_mode_; }
  // Set by a callback (EarlyStopping, TerminateOnNaN) to end fit after the current step or epoch.
  bool stop_training = false;

 private:
  struct Compiled;
  struct Run;
  Compiled& compiled();
  void check_data(const Tensor& x, const Tensor& y, const std::string& what);
  // fit's options and data checked, y as the loss takes it, the validation set split off or checked.
  struct FitData {
    Tensor x, y, val_x, val_y;  // val_x undefined without validation
    std::int64_t validation_batch;
  };
  FitData prepare_fit(const Tensor& x, const Tensor& y, const FitOptions& options);
  Logs evaluate_prepared(const Tensor& x, const Tensor& y, std::int64_t batch_size, const std::string& prefix);
  // The XLA paths (model_xla.cpp).
  History fit_xla(const Tensor& x, const Tensor& y, const FitOptions& options);
  XlaRunner& xla_runner();
  // x for an XLA program: float32 [N, in_features] (flattened when the model starts with Flatten).
  Tensor xla_inputs(const Tensor& x, const std::string& what);
  void check_xla_loss(const std::string& what);
  Logs evaluate_xla(const Tensor& x, const Tensor& y, std::int64_t batch_size, const std::string& prefix);
  Tensor predict_xla(const Tensor& x, std::int64_t batch_size);

  std::shared_ptr<nn::Module> module_;
  Device device_;
  std::unique_ptr<Compiled> compiled_;
  std::shared_ptr<XlaStrategy> xla_;
  std::unique_ptr<XlaRunner> xla_runner_;
  // While fit runs on an XLA device the devices hold the newest weights (a callback's evaluate
  // must not overwrite them with the module's); otherwise the module is the authority.
  bool xla_fitting_ = false;
  std::string step_mode_;
  std::string data_mode_;
  std::vector<double> epoch_seconds_;
  std::vector<std::int64_t> epoch_samples_;
};

}  // namespace accel::train
