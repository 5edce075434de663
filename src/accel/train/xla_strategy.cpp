#include "accel/train/xla_strategy.h"

#include <algorithm>
#include <cstring>

#include "accel/autograd/grad_mode.h"
#include "accel/ops/ops.h"

namespace accel::train {

bool names_xla_device(const std::string& spec) {
  for (const std::string kind : {"xla", "tpu"}) {
    if (spec == kind || spec == kind + ":0") return true;
    if (spec.starts_with(kind + ":")) {
      throw DeviceError("'" + spec + "': accel trains on " + kind + ":0, or on several devices as replicas (" +
                        "accel train --replicas N; in C++ XlaStrategy(plugin, N)); a single device other than " +
                        "the first is not supported yet");
    }
  }
  return false;
}

XlaStrategy::XlaStrategy(const std::string& plugin, int replicas) : client_(xla::shared_client(plugin)) {
  const int devices = client_->device_count();
  if (replicas < 0 || replicas > devices) {
    throw DeviceError(std::to_string(replicas) + " replicas asked for; the PJRT " + client_->platform_name() +
                      " plugin (" + client_->plugin().path() + ") has " + std::to_string(devices) + " device(s)");
  }
  replicas_ = replicas == 0 ? devices : replicas;
}

std::string XlaStrategy::device_kind() const { return client_->platform_name() == "tpu" ? "tpu" : "xla"; }

std::string XlaStrategy::describe() const {
  const std::string devices =
      replicas_ == 1 ? device_kind() + ":0" : device_kind() + ":0-" + std::to_string(replicas_ - 1);
  return devices + " (PJRT " + client_->platform_name() + " plugin, " + std::to_string(replicas_) +
         (replicas_ == 1 ? " replica)" : " replicas in sync)");
}

namespace {

std::vector<std::int64_t> dims_of(const Tensor& t) { return t.shape().sizes(); }

}  // namespace

XlaRunner::XlaRunner(const XlaStrategy& strategy, nn::Module& module, optim::Optimizer& optimizer)
    : strategy_(strategy),
      module_(module),
      optimizer_(optimizer),
      mlp_(describe_for_xla(module)),
      spec_(describe_for_xla(optimizer)) {
  const auto params = module.parameters();
  std::size_t p = 0;
  for (const auto& layer : mlp_.layers) {
    for (const bool is_bias : {false, true}) {
      if (is_bias && !layer.bias) continue;
      const std::vector<std::int64_t> expected =
          is_bias ? std::vector<std::int64_t>{layer.out} : std::vector<std::int64_t>{layer.out, layer.in};
      if (p >= params.size() || dims_of(params[p]) != expected || params[p].dtype() != DType::Float32) {
        throw ValueError("XLA training needs the model's parameters as float32 weights and biases in layer order");
      }
      ++p;
    }
  }
  upload_state();
}

std::int64_t XlaRunner::replica_batch(std::int64_t batch_size) const {
  const int replicas = strategy_.num_replicas_in_sync();
  if (batch_size <= 0 || batch_size % replicas != 0) {
    throw ValueError("the batch size (" + std::to_string(batch_size) + ", the global batch) must be a positive " +
                     "multiple of the " + std::to_string(replicas) + " replicas in sync: each takes an equal share");
  }
  return batch_size / replicas;
}

const xla::Executable& XlaRunner::train_program(std::int64_t batch_size) {
  const std::int64_t rows = replica_batch(batch_size);
  auto& program = train_programs_[batch_size];
  if (!program) {
    const int replicas = strategy_.num_replicas_in_sync();
    program = strategy_.client().compile(emit_train_step(mlp_, spec_, rows, replicas), replicas);
  }
  return *program;
}

const xla::Executable& XlaRunner::epoch_program(std::int64_t batch_size, std::int64_t steps) {
  const std::int64_t rows = replica_batch(batch_size);
  if (training_x_.empty()) throw ValueError("XLA training: set_training_data before an epoch");
  auto& program = epoch_programs_[{batch_size, steps, training_samples_}];
  if (!program) {
    const int replicas = strategy_.num_replicas_in_sync();
    program =
        strategy_.client().compile(emit_train_epoch(mlp_, spec_, rows, replicas, steps, training_samples_), replicas);
  }
  return *program;
}

const xla::Executable& XlaRunner::eval_program(std::int64_t batch_size) {
  auto& program = eval_programs_[batch_size];
  if (!program) program = strategy_.client().compile(emit_eval_step(mlp_, batch_size), 1);
  return *program;
}

std::vector<xla::Buffer> XlaRunner::zero_totals(int device) const {
  const float zero = 0.0f;
  std::vector<xla::Buffer> totals;
  totals.push_back(strategy_.client().upload(&zero, xla::ElementType::F32, {}, device));
  totals.push_back(strategy_.client().upload(&zero, xla::ElementType::F32, {}, device));
  return totals;
}

void XlaRunner::upload_state() {
  const auto params = module_.parameters();
  const auto state = optimizer_.state_dict();
  const auto saved = [&](std::size_t i, const std::string& buffer) -> Tensor {
    auto it = state.find("state." + std::to_string(i) + "." + buffer);
    return it == state.end() ? Tensor() : it->second.to(kCPU).to(DType::Float32).contiguous();
  };
  steps_ = 0;
  if (Tensor step = saved(0, "step"); step.defined()) steps_ = static_cast<std::int64_t>(step.item_double());
  std::vector<std::string> rows;
  if (spec_.kind == XlaOptimizer::Kind::Adam) rows = {"exp_avg", "exp_avg_sq"};
  if (spec_.kind == XlaOptimizer::Kind::SGD && spec_.momentum != 0.0f) rows = {"momentum_buffer"};

  const xla::Client& client = strategy_.client();
  state_.clear();
  state_.resize(static_cast<std::size_t>(strategy_.num_replicas_in_sync()));
  for (int d = 0; d < strategy_.num_replicas_in_sync(); ++d) {
    auto& buffers = state_[static_cast<std::size_t>(d)];
    for (const Tensor& p : params) {
      const Tensor host = p.detach().to(kCPU).contiguous();
      buffers.push_back(client.upload(host.data_ptr<float>(), xla::ElementType::F32, dims_of(p), d));
    }
    for (const std::string& row : rows) {
      for (std::size_t i = 0; i < params.size(); ++i) {
        Tensor host = saved(i, row);
        if (!host.defined()) host = zeros(params[i].shape(), DType::Float32, kCPU);
        buffers.push_back(client.upload(host.data_ptr<float>(), xla::ElementType::F32, dims_of(params[i]), d));
      }
    }
    for (auto& total : zero_totals(d)) buffers.push_back(std::move(total));
  }
}

void XlaRunner::download_state() {
  const auto params = module_.parameters();
  const auto& buffers = state_.front();
  {
    autograd::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
      Tensor host = empty(params[i].shape(), DType::Float32, kCPU);
      buffers[i].to_host(host.data_ptr<float>(), static_cast<std::size_t>(host.numel()) * sizeof(float));
      Tensor param = params[i];
      copy_(param, host);
    }
  }
  if (steps_ == 0) return;  // the optimizer has no state to take
  auto state = optimizer_.state_dict();
  std::vector<std::string> rows;
  if (spec_.kind == XlaOptimizer::Kind::Adam) rows = {"exp_avg", "exp_avg_sq"};
  if (spec_.kind == XlaOptimizer::Kind::SGD && spec_.momentum != 0.0f) rows = {"momentum_buffer"};
  std::size_t b = params.size();
  for (const std::string& row : rows) {
    for (std::size_t i = 0; i < params.size(); ++i, ++b) {
      Tensor host = empty(params[i].shape(), DType::Float32, kCPU);
      buffers[b].to_host(host.data_ptr<float>(), static_cast<std::size_t>(host.numel()) * sizeof(float));
      state["state." + std::to_string(i) + "." + row] = host;
    }
  }
  if (spec_.kind == XlaOptimizer::Kind::Adam) {
    for (std::size_t i = 0; i < params.size(); ++i) {
      state["state." + std::to_string(i) + ".step"] = full({}, static_cast<double>(steps_), DType::Int64, kCPU);
    }
  }
  optimizer_.load_state_dict(state);
}

std::vector<std::vector<xla::Buffer>> XlaRunner::upload_batch(const float* x, const std::int32_t* y, std::int64_t n,
                                                              std::int64_t rows, int replicas) {
  const std::int64_t in = mlp_.in_features();
  const xla::Client& client = strategy_.client();
  std::vector<std::vector<xla::Buffer>> per_replica(static_cast<std::size_t>(replicas));
  std::vector<float> x_pad, mask(static_cast<std::size_t>(rows));
  std::vector<std::int32_t> y_pad;
  for (int d = 0; d < replicas; ++d) {
    const std::int64_t first = d * rows;
    const std::int64_t real = std::clamp<std::int64_t>(n - first, 0, rows);
    const float* xs = x + first * in;
    const std::int32_t* ys = y + first;
    if (real < rows) {  // a short last batch: zeros after the real samples, masked out
      x_pad.assign(static_cast<std::size_t>(rows * in), 0.0f);
      y_pad.assign(static_cast<std::size_t>(rows), 0);
      if (real > 0) {
        std::memcpy(x_pad.data(), xs, static_cast<std::size_t>(real * in) * sizeof(float));
        std::memcpy(y_pad.data(), ys, static_cast<std::size_t>(real) * sizeof(std::int32_t));
      }
      xs = x_pad.data();
      ys = y_pad.data();
    }
    std::fill(mask.begin(), mask.end(), 0.0f);
    std::fill(mask.begin(), mask.begin() + real, 1.0f);
    auto& buffers = per_replica[static_cast<std::size_t>(d)];
    buffers.push_back(client.upload(xs, xla::ElementType::F32, {rows, in}, d));
    buffers.push_back(client.upload(ys, xla::ElementType::S32, {rows}, d));
    buffers.push_back(client.upload(mask.data(), xla::ElementType::F32, {rows}, d));
  }
  return per_replica;
}

void XlaRunner::train_step(const float* x, const std::int32_t* y, std::int64_t n, std::int64_t batch_size) {
  const xla::Executable& program = train_program(batch_size);
  if (n <= 0 || n > batch_size) {
    throw ValueError("XLA train step: " + std::to_string(n) + " samples for a batch of " + std::to_string(batch_size));
  }
  const int replicas = strategy_.num_replicas_in_sync();
  auto batch = upload_batch(x, y, n, batch_size / replicas, replicas);
  const std::vector<float> hyper = xla_hyper(spec_, optimizer_.lr(), steps_ + 1, n);
  std::vector<std::vector<PJRT_Buffer*>> arguments(static_cast<std::size_t>(replicas));
  for (std::size_t d = 0; d < arguments.size(); ++d) {
    batch[d].push_back(strategy_.client().upload(hyper.data(), xla::ElementType::F32, {4}, static_cast<int>(d)));
    for (const auto& buffer : state_[d]) arguments[d].push_back(buffer.get());
    for (const auto& buffer : batch[d]) arguments[d].push_back(buffer.get());
  }
  auto outputs = run(program, arguments);
  ++steps_;
  // The donated inputs are gone; the outputs are the new state, in the same order, then the
  // step's own loss.
  last_step_loss_ = std::move(outputs.front().back());
  for (std::size_t d = 0; d < outputs.size(); ++d) {
    outputs[d].pop_back();
    state_[d] = std::move(outputs[d]);
  }
}

void XlaRunner::set_training_data(const float* x, const std::int32_t* y, std::int64_t n) {
  training_x_.clear();
  training_y_.clear();
  for (int d = 0; d < strategy_.num_replicas_in_sync(); ++d) {
    training_x_.push_back(strategy_.client().upload(x, xla::ElementType::F32, {n, mlp_.in_features()}, d));
    training_y_.push_back(strategy_.client().upload(y, xla::ElementType::S32, {n}, d));
  }
  training_samples_ = n;
}

void XlaRunner::train_epoch(const std::vector<std::int64_t>& order, std::int64_t batch_size) {
  const int replicas = strategy_.num_replicas_in_sync();
  const auto n = static_cast<std::int64_t>(order.size());
  const std::int64_t steps = (n + batch_size - 1) / batch_size;
  if (steps == 0) return;
  const xla::Executable& program = epoch_program(batch_size, steps);
  const std::int64_t rows = batch_size / replicas;
  // Per step: the rate's bias corrections (as train_step computes them) and 1 / the batch's size.
  std::vector<float> hyper;
  for (std::int64_t i = 0; i < steps; ++i) {
    const std::int64_t in_batch = std::min(batch_size, n - i * batch_size);
    for (float h : xla_hyper(spec_, optimizer_.lr(), steps_ + 1 + i, in_batch)) hyper.push_back(h);
  }
  std::vector<std::vector<xla::Buffer>> inputs(static_cast<std::size_t>(replicas));
  std::vector<std::vector<PJRT_Buffer*>> arguments(static_cast<std::size_t>(replicas));
  std::vector<std::int32_t> indices(static_cast<std::size_t>(steps * rows));
  std::vector<float> mask(static_cast<std::size_t>(steps * rows));
  for (int d = 0; d < replicas; ++d) {
    // Replica d takes rows [d * rows, (d + 1) * rows) of each global batch; past the end: padding.
    for (std::int64_t i = 0; i < steps; ++i) {
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t position = i * batch_size + d * rows + r;
        const std::int64_t in_batch_end = std::min(n, (i + 1) * batch_size);
        const bool real = position < in_batch_end;
        indices[static_cast<std::size_t>(i * rows + r)] =
            real ? static_cast<std::int32_t>(order[static_cast<std::size_t>(position)]) : 0;
        mask[static_cast<std::size_t>(i * rows + r)] = real ? 1.0f : 0.0f;
      }
    }
    auto& in = inputs[static_cast<std::size_t>(d)];
    in.push_back(strategy_.client().upload(indices.data(), xla::ElementType::S32, {steps, rows}, d));
    in.push_back(strategy_.client().upload(mask.data(), xla::ElementType::F32, {steps, rows}, d));
    in.push_back(strategy_.client().upload(hyper.data(), xla::ElementType::F32, {steps, 4}, d));
    auto& args = arguments[static_cast<std::size_t>(d)];
    for (const auto& buffer : state_[static_cast<std::size_t>(d)]) args.push_back(buffer.get());
    args.push_back(training_x_[static_cast<std::size_t>(d)].get());
    args.push_back(training_y_[static_cast<std::size_t>(d)].get());
    for (const auto& buffer : in) args.push_back(buffer.get());
  }
  auto outputs = run(program, arguments);
  steps_ += steps;
  for (std::size_t d = 0; d < outputs.size(); ++d) state_[d] = std::move(outputs[d]);
}

std::vector<std::vector<xla::Buffer>> XlaRunner::run(const xla::Executable& program,
                                                     const std::vector<std::vector<PJRT_Buffer*>>& arguments) {
  try {
    return program.execute(arguments);
  } catch (...) {
    state_.clear();
    throw;
  }
}

double XlaRunner::last_step_loss() const {
  if (!last_step_loss_) throw ValueError("XLA: no train step has run");
  return last_step_loss_.scalar_f32();
}

XlaTotals XlaRunner::take_train_totals() {
  if (state_.empty()) throw ValueError("XLA: the device state is gone (a program failed): upload it again");
  const std::size_t totals = state_.front().size() - 2;
  const XlaTotals result{.loss_sum = state_.front()[totals].scalar_f32(),
                         .correct = state_.front()[totals + 1].scalar_f32()};
  for (std::size_t d = 0; d < state_.size(); ++d) {
    auto zero = zero_totals(static_cast<int>(d));
    state_[d][totals] = std::move(zero[0]);
    state_[d][totals + 1] = std::move(zero[1]);
  }
  return result;
}

void XlaRunner::run_eval(const float* x, const std::int32_t* y, std::int64_t n, std::int64_t batch_size,
                         std::vector<xla::Buffer>& totals,
                         const std::function<void(const xla::Buffer&, std::int64_t)>& each) {
  if (batch_size <= 0) throw ValueError("XLA evaluation: the batch size must be positive");
  const xla::Executable& program = eval_program(batch_size);
  const std::size_t params = mlp_.parameter_count();
  for (std::int64_t first = 0; first < n; first += batch_size) {
    const std::int64_t count = std::min(batch_size, n - first);
    auto batch = upload_batch(x + first * mlp_.in_features(), y + first, count, batch_size, 1);
    std::vector<std::vector<PJRT_Buffer*>> arguments(1);
    for (std::size_t i = 0; i < params; ++i) arguments[0].push_back(state_.front()[i].get());
    arguments[0].push_back(totals[0].get());
    arguments[0].push_back(totals[1].get());
    for (const auto& buffer : batch[0]) arguments[0].push_back(buffer.get());
    auto outputs = run(program, arguments);
    totals[0] = std::move(outputs[0][0]);
    totals[1] = std::move(outputs[0][1]);
    if (each) each(outputs[0][2], count);
  }
}

XlaTotals XlaRunner::evaluate(const float* x, const std::int32_t* y, std::int64_t n, std::int64_t batch_size) {
  std::vector<xla::Buffer> totals = zero_totals(0);
  run_eval(x, y, n, batch_size, totals, {});
  return {.loss_sum = totals[0].scalar_f32(), .correct = totals[1].scalar_f32(), .samples = n};
}

void XlaRunner::predict(const float* x, std::int64_t n, float* out, std::int64_t batch_size) {
  const std::int64_t classes = mlp_.classes();
  const std::vector<std::int32_t> no_labels(static_cast<std::size_t>(n), 0);
  std::vector<float> logits(static_cast<std::size_t>(batch_size * classes));
  std::vector<xla::Buffer> totals = zero_totals(0);
  std::int64_t row = 0;
  run_eval(x, no_labels.data(), n, batch_size, totals, [&](const xla::Buffer& batch_logits, std::int64_t count) {
    batch_logits.to_host(logits.data(), logits.size() * sizeof(float));
    std::memcpy(out + row * classes, logits.data(), static_cast<std::size_t>(count * classes) * sizeof(float));
    row += count;
  });
}

}  // namespace accel::train
