// The seed's model family as whole XLA programs: a training step (forward, cross-entropy,
// backward, all-reduce across replicas, optimizer update) and an evaluation step, each emitted as
// one StableHLO module (backends/xla/stablehlo_builder.h) that a PJRT plugin compiles once.
//
// Models: nn::Sequential of Linear layers with ReLU between them (a leading Flatten, Dropout(0)
// allowed); loss: sparse categorical cross-entropy on logits; optimizers: Adam, AdamW, SGD (with
// momentum, no dampening or Nesterov). Anything else is a ValueError that names it.
//
// The train step's arguments, per replica, in order:
//   parameters (each Linear's weight [out, in], then its bias), donated to outputs 0..P-1;
//   optimizer state (Adam: every exp_avg, then every exp_avg_sq; SGD with momentum: the
//   buffers), donated to the next S outputs; the loss sum and correct count (f32 scalars, the
//   epoch's running totals), donated to the last two outputs;
//   x [b, in] f32, y [b] i32, mask [b] f32 (1 for a real sample, 0 for padding: a last, short
//   batch runs in the same program), hyper [4] f32: see xla_hyper. Its outputs: the donated
//   values' new ones, in order, then the batch's summed loss.
// The eval step's: the parameters, loss sum and correct count (donated to outputs 0, 1), x, y,
// mask; outputs: the two totals and the logits [b, classes].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "accel/nn/module.h"
#include "accel/optim/optimizer.h"

namespace accel::train {

struct XlaLinear {
  std::int64_t in = 0, out = 0;
  bool bias = true;
  bool relu_after = false;
};

struct XlaMlp {
  std::vector<XlaLinear> layers;
  bool flatten_input = false;  // a leading nn::Flatten: x is reshaped to [N, in] on the host
  std::int64_t in_features() const { return layers.front().in; }
  std::int64_t classes() const { return layers.back().out; }
  std::size_t parameter_count() const;  // buffers: weights and biases
};

// Reads the model's structure; ValueError naming the first layer XLA programs do not cover.
XlaMlp describe_for_xla(const nn::Module& module);

struct XlaOptimizer {
  enum class Kind { Adam, SGD } kind = Kind::Adam;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;
  bool decoupled = false;  // AdamW
  float momentum = 0.0f;   // SGD
  int state_rows() const { return kind == Kind::Adam ? 2 : (momentum != 0.0f ? 1 : 0); }
};

// From an accel optimizer (its current hyper-parameters); ValueError for others.
XlaOptimizer describe_for_xla(const optim::Optimizer& optimizer);

// The per-step scalars the host computes in double, as the CPU kernels do, and passes in:
// hyper[0]: Adam's lr / (1 - beta1^t), SGD's lr; hyper[1]: Adam's 1 / sqrt(1 - beta2^t);
// hyper[2]: 1 / (samples in the global batch); hyper[3]: AdamW's 1 - lr * weight_decay.
// The learning rate is an argument, not a constant: a scheduler changes it without a recompile.
std::vector<float> xla_hyper(const XlaOptimizer& optimizer, double lr, std::int64_t step, std::int64_t samples);

std::string emit_train_step(const XlaMlp& mlp, const XlaOptimizer& optimizer, std::int64_t replica_batch, int replicas);
// A whole epoch as one program: a loop of `steps` train steps over a training set of `samples`
// that stays on the device. Arguments: the train step's parameters, state and totals (donated
// alike), then x_all [samples, in] f32, y_all [samples] i32, and per step: the replica's sample
// indices order [steps, b] i32, mask [steps, b] f32 and hyper [steps, 4] f32. Outputs: the train
// step's. One dispatch per epoch instead of one per step (what JAX's lax.scan does).
std::string emit_train_epoch(const XlaMlp& mlp, const XlaOptimizer& optimizer, std::int64_t replica_batch, int replicas,
                             std::int64_t steps, std::int64_t samples);
std::string emit_eval_step(const XlaMlp& mlp, std::int64_t batch);

}  // namespace accel::train
