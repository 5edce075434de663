// Training on XLA devices through PJRT (TPUs through libtpu, any plugin's devices), as the seed's
// TPU section does it with tf.distribute.TPUStrategy:
//
//   train::XlaStrategy strategy;  // ACCEL_PJRT_PLUGIN, else libtpu, else the CPU plugin; all devices
//   std::printf("replicas: %d\n", strategy.num_replicas_in_sync());
//   train::Model model(nn::Sequential(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 10)), strategy);
//   model.compile({.optimizer = "adam", .metrics = {"accuracy"}});
//   model.fit(x_train, y_train, {.epochs = 5, .batch_size = 64});  // the global batch
//
// The step is one compiled program (train/xla_program.h) run once per batch on every replica:
// replicated data parallelism, each replica takes batch_size / replicas samples and the gradients
// are all-reduced inside the program. Parameters and optimizer state stay on the devices between
// steps (donated to the step's outputs); the module's own tensors are brought up to date at the
// end of every epoch and of fit.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "accel/backends/xla/pjrt.h"
#include "accel/nn/module.h"
#include "accel/optim/optimizer.h"
#include "accel/train/xla_program.h"

namespace accel::train {

// Whether `spec` names an XLA device: "xla", "xla:N", "tpu", "tpu:N" (N = 0: one device; more
// devices are replicas, see XlaStrategy). Throws DeviceError for xla:N with N > 0 or a malformed N.
bool names_xla_device(const std::string& spec);

class XlaStrategy {
 public:
  // plugin: a path or a name (xla::find_plugin; empty: the default). replicas: how many of the
  // plugin's devices to train on, from device 0 (0: all of them).
  explicit XlaStrategy(const std::string& plugin = "", int replicas = 0);

  int num_replicas_in_sync() const { return replicas_; }
  xla::Client& client() const { return *client_; }
  // "tpu" on a TPU plugin, else "xla": the device names accel prints (tpu:0, xla:0).
  std::string device_kind() const;
  // "xla:0 (PJRT cpu plugin, 1 replica)", "tpu:0-3 (PJRT tpu plugin, 4 replicas in sync)".
  std::string describe() const;

 private:
  std::shared_ptr<xla::Client> client_;
  int replicas_ = 1;
};

// What an evaluation or a stretch of training added up: the summed loss, the samples it got
// right, the samples.
struct XlaTotals {
  double loss_sum = 0;
  double correct = 0;
  std::int64_t samples = 0;
};

// A model's compiled programs (one per batch size, compiled at first use) and its device-resident
// state: what fit, evaluate and predict use on an XLA device.
class XlaRunner {
 public:
  XlaRunner(const XlaStrategy& strategy, nn::Module& module, optim::Optimizer& optimizer);

  // Copies the module's parameters and the optimizer's state to every replica.
  void upload_state();
  // Copies replica 0's parameters and optimizer state back into the module and the optimizer.
  void download_state();
  // One optimizer step on `n` samples of a global batch of `batch_size` (fewer are padded and
  // masked): x [n, in] float32, y [n] class indices, both on the host. ValueError when the batch
  // does not split evenly over the replicas.
  void train_step(const float* x, const std::int32_t* y, std::int64_t n, std::int64_t batch_size);
  // The training set, copied to every replica's device for train_epoch (x [n, in], y [n]).
  void set_training_data(const float* x, const std::int32_t* y, std::int64_t n);
  // Compiles what train_epoch runs for `samples` samples in batches of `batch_size` (else its
  // first call does: fit calls this before it starts timing).
  void prepare_epoch(std::int64_t samples, std::int64_t batch_size) {
    epoch_program(batch_size, (samples + batch_size - 1) / batch_size);
  }
  void prepare_step(std::int64_t batch_size) { train_program(batch_size); }
  // One epoch as one program run: the batches of `batch_size` samples that `order` (indices into
  // the training set, batch after batch; the last batch may be short) lists.
  void train_epoch(const std::vector<std::int64_t>& order, std::int64_t batch_size);
  // The loss and accuracy the steps since the last call added up (one device read).
  XlaTotals take_train_totals();
  // The summed loss of the last train_step's batch (one device read).
  double last_step_loss() const;
  // False after a program failed: its donated inputs are gone (upload_state starts again).
  bool has_state() const { return !state_.empty(); }
  // Loss and correct count over (x, y) in batches, with the parameters on replica 0's device.
  XlaTotals evaluate(const float* x, const std::int32_t* y, std::int64_t n, std::int64_t batch_size);
  // Logits [n, classes] into `out`.
  void predict(const float* x, std::int64_t n, float* out, std::int64_t batch_size);
  const XlaMlp& mlp() const { return mlp_; }

 private:
  std::vector<xla::Buffer> zero_totals(int device) const;
  std::vector<std::vector<xla::Buffer>> upload_batch(const float* x, const std::int32_t* y, std::int64_t n,
                                                     std::int64_t rows_per_replica, int replicas);

  std::int64_t replica_batch(std::int64_t batch_size) const;  // ValueError unless it splits evenly
  const xla::Executable& train_program(std::int64_t batch_size);
  const xla::Executable& epoch_program(std::int64_t batch_size, std::int64_t steps);
  const xla::Executable& eval_program(std::int64_t batch_size);
  // Runs `program`; a failure leaves no state (its donated inputs are gone), then rethrows.
  std::vector<std::vector<xla::Buffer>> run(const xla::Executable& program,
                                            const std::vector<std::vector<PJRT_Buffer*>>& arguments);
  // Runs the eval program over x in batches; `each` gets each batch's outputs and its row count.
  void run_eval(const float* x, const std::int32_t* y, std::int64_t n, std::int64_t batch_size,
                std::vector<xla::Buffer>& totals, const std::function<void(const xla::Buffer&, std::int64_t)>& each);

  const XlaStrategy& strategy_;
  nn::Module& module_;
  optim::Optimizer& optimizer_;
  XlaMlp mlp_;
  XlaOptimizer spec_;
  std::int64_t steps_ = 0;  // the optimizer's step count (Adam's t)
  std::map<std::int64_t, std::unique_ptr<xla::Executable>> train_programs_, eval_programs_;
  // By batch size, steps and the training set's size (the program's shapes).
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t>, std::unique_ptr<xla::Executable>> epoch_programs_;
  xla::Buffer last_step_loss_;                        // replica 0's
  std::vector<xla::Buffer> training_x_, training_y_;  // per replica
  std::int64_t training_samples_ = 0;
  // Per replica: parameters, optimizer state, loss sum, correct count (the train step's
  // donated arguments, in its order).
  std::vector<std::vector<xla::Buffer>> state_;
};

}  // namespace accel::train
