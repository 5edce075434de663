#include "accel/train/model.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "accel/autograd/grad_mode.h"
#include "accel/backends/backend.h"
#include "accel/core/parallel.h"
#include "accel/data/batch_prefetcher.h"
#include "accel/data/dataloader.h"
#include "accel/data/device_batches.h"
#include "accel/data/staged_batches.h"
#include "accel/hw/host_info.h"  // usable_cpus: the thread tuner's ceiling
#include "accel/memory/device_allocators.h"
#include "accel/ops/autocast.h"
#include "accel/ops/ops.h"
#include "accel/tensor/safetensors.h"
#include "accel/train/callbacks.h"
#include "accel/train/captured_step.h"
#include "accel/train/fit_inputs.h"
#include "accel/train/model_compiled.h"
#include "accel/train/progress_bar.h"
#include "accel/train/seed_trainer.h"  // resolve_device
#include "accel/train/sigterm_watch.h"
#include "accel/train/thread_tuner.h"
#include "accel/train/training_checkpoint.h"
#include "accel/train/xla_strategy.h"

namespace accel::train {

namespace {

// -sum(target * log_softmax(logits)) per sample, averaged: Keras's categorical_crossentropy
// with from_logits, for one-hot or soft targets.
Tensor soft_cross_entropy(const Tensor& logits, const Tensor& target) {
  return neg(mean(sum(mul(log_softmax(logits, 1), target), {1})));
}

bool is_floating(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::Float16 || dtype == DType::BFloat16;
}

// Eval mode for a scope; the mode before it comes back however the scope ends.
class EvalMode {
 public:
  explicit EvalMode(nn::Module& module) : module_(module), training_(module.is_training()) { module.eval(); }
  ~EvalMode() { module_.train(training_); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  nn::Module& module_;
  bool training_;
};

}  // namespace

Model::Model(std::shared_ptr<nn::Module> module, std::optional<Device> device)
    : module_(std::move(module)), device_(device ? *device : resolve_device("auto")) {
  if (!module_) throw ValueError("Model: the module is null");
  module_->to(device_);
  module_->pack_parameters();  // one fused optimizer kernel over flat buffers, fixed gradient places
}

Model::Model(std::shared_ptr<nn::Module> module, const XlaStrategy& strategy)
    : module_(std::move(module)), device_(kCPU), xla_(std::make_shared<XlaStrategy>(strategy)) {
  if (!module_) throw ValueError("Model: the module is null");
  describe_for_xla(*module_);  // an unsupported layer fails here, not at fit
}

Model::~Model() = default;

std::string Model::device_description() const { return xla_ ? xla_->describe() : device_.describe(); }

Model::Compiled& Model::compiled() {
  if (!compiled_) throw ValueError("Model: call compile() before fit, evaluate or optimizer()");
  return *compiled_;
}

optim::Optimizer& Model::optimizer() { return *compiled().optimizer; }

double Model::learning_rate() { return optimizer().lr(); }

void Model::set_learning_rate(double lr) {
  optimizer().set_lr(lr);
  if (compiled().active_step) compiled().active_step->recapture();
}

void Model::compile(CompileOptions options) {
  const auto params = module_->parameters();
  const std::string& name = options.optimizer;
  std::shared_ptr<optim::Optimizer> optimizer;
  if (name == "adam") {
    optimizer = std::make_shared<optim::Adam>(params, optim::AdamOptions{.lr = options.learning_rate.value_or(1e-3)});
  } else if (name == "adamw") {
    optim::AdamWOptions adamw;
    adamw.lr = options.learning_rate.value_or(1e-3);
    optimizer = std::make_shared<optim::AdamW>(params, adamw);
  } else if (name == "sgd") {
    optimizer = std::make_shared<optim::SGD>(params, optim::SGDOptions{.lr = options.learning_rate.value_or(1e-2)});
  } else {
    throw ValueError("compile: unknown optimizer '" + name +
                     "' (adam, adamw or sgd; or pass an optimizer object to compile)");
  }
  compile(std::move(optimizer), nullptr, std::move(options));
}

void Model::compile(std::shared_ptr<optim::Optimizer> optimizer, LossFn loss, CompileOptions options) {
  if (!optimizer) throw ValueError("compile: the optimizer must not be null");
  const bool loss_by_name = !loss;
  if (loss_by_name) {
    if (options.loss == "sparse_categorical_crossentropy") {
      loss = cross_entropy;
    } else if (options.loss == "categorical_crossentropy") {
      loss = soft_cross_entropy;
    } else if (options.loss == "mse" || options.loss == "mean_squared_error") {
      loss = mse_loss;
    } else {
      throw ValueError("compile: unknown loss '" + options.loss +
                       "' (sparse_categorical_crossentropy, categorical_crossentropy or mse; or pass a loss function)");
    }
  }
  const auto params = module_->parameters();
  bool same = optimizer->params().size() == params.size();
  for (std::size_t i = 0; same && i < params.size(); ++i) same = &optimizer->params()[i].impl() == &params[i].impl();
  if (!same) {
    throw ValueError(
        "compile: the optimizer was built over other parameters than this model's (build it over "
        "model.module().parameters())");
  }
  auto c = std::make_unique<Compiled>();
  c->optimizer = std::move(optimizer);
  c->loss = std::move(loss);
  c->loss_by_name = loss_by_name;
  c->loss_name = options.loss;
  c->targets = options.loss == "sparse_categorical_crossentropy" ? Compiled::Targets::ClassIndices
               : options.loss == "categorical_crossentropy"      ? Compiled::Targets::Distributions
                                                                 : Compiled::Targets::Values;
  for (const std::string& metric : options.metrics) {
    if (metric != "accuracy" && metric != "acc") {
      throw ValueError("compile: unknown metric '" + metric + "' (accel knows accuracy)");
    }
    if (c->targets == Compiled::Targets::Values) {
      throw ValueError(
          "compile: accuracy needs a classification loss (sparse_categorical_crossentropy or "
          "categorical_crossentropy), not " +
          options.loss);
    }
    c->accuracy = true;
  }
  if (options.amp == "bf16") {
    c->amp = DType::BFloat16;
  } else if (options.amp == "fp16") {
    c->amp = DType::Float16;
  } else if (options.amp != "off") {
    throw ValueError("compile: amp must be off, bf16 or fp16, got '" + options.amp + "'");
  }
  c->capture = options.capture;
  if (options.gradient_accumulation_steps < 1) {
    throw ValueError("compile: gradient_accumulation_steps must be >= 1, got " +
                     std::to_string(options.gradient_accumulation_steps));
  }
  c->accumulate = options.gradient_accumulation_steps;
  // float16's range needs loss scaling; bfloat16 has float32's range and does not.
  c->scaler = std::make_unique<amp::GradScaler>(device_, amp::GradScalerOptions{.enabled = c->amp == DType::Float16});
  xla_runner_.reset();  // it holds the old optimizer
  compiled_ = std::move(c);
}

std::vector<std::string> Model::log_names(bool validation) const {
  std::vector<std::string> names = {"loss"};
  if (compiled_ && compiled_->accuracy) names.emplace_back("accuracy");
  if (validation) {
    const std::size_t n = names.size();
    for (std::size_t i = 0; i < n; ++i) names.push_back("val_" + names[i]);
  }
  names.emplace_back("lr");
  return names;
}

// Checks x and y against each other, the loss and the model (one sample through it), so bad
// data fails before the first step. y is converted in place to what the loss takes.
void Model::check_data(const Tensor& x, const Tensor& y, const std::string& what) {
  const Compiled& c = compiled();
  if (!y.defined() || y.dim() < 1) {
    throw ShapeError(what + ": y has no samples (" + (y.defined() ? shape_text(y) : std::string("undefined")) +
                     "): its first dimension counts samples");
  }
  if (x.shape()[0] != y.shape()[0]) {
    throw ShapeError(what + ": x has " + std::to_string(x.shape()[0]) + " samples (" + shape_text(x) + ") but y has " +
                     std::to_string(y.shape()[0]) + " (" + shape_text(y) + "): give one target per sample");
  }
  Tensor output;
  try {
    autograd::NoGradGuard no_grad;
    const EvalMode eval(*module_);
    const amp::Autocast scope = c.autocast(device_);
    const Tensor first = x.slice(0, 0, 1);
    output = (*module_)(prepare_inputs(first, what).to(device_)).to(kCPU).to(DType::Float32);
  } catch (const Error& e) {
    throw ShapeError(what + ": the model cannot take samples of shape " + x.shape().to_string() +
                     " (without the first dimension): " + e.what());
  }
  if (output.dim() < 1 || output.shape()[0] != 1) {
    throw ShapeError(what + ": the model gives " + output.shape().to_string() +
                     " for one sample; its output needs a first dimension of samples");
  }
  const std::int64_t width = output.dim() == 2 ? output.shape()[1] : -1;
  if (c.targets == Compiled::Targets::ClassIndices) {
    if (y.dim() != 1 || is_floating(y.dtype())) {
      throw DTypeError(what + ": sparse_categorical_crossentropy takes class indices, int64 [N]; y is " +
                       shape_text(y) + (y.dim() == 2 ? " (one-hot targets take categorical_crossentropy)" : ""));
    }
    if (width < 0) {
      throw ShapeError(what + ": the model's output " + output.shape().to_string() +
                       " is not [N, classes], which sparse_categorical_crossentropy needs");
    }
    const auto labels = y.to(DType::Int64).to_vector<std::int64_t>();
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] < 0 || labels[i] >= width) {
        throw DataError(what + ": label " + std::to_string(labels[i]) + " of sample " + std::to_string(i) +
                        " is outside the model's " + std::to_string(width) + " classes (0.." +
                        std::to_string(width - 1) + ")");
      }
    }
  } else {
    if (!is_floating(y.dtype()))
      throw DTypeError(what + ": " + c.loss_name + " takes float targets; y is " + shape_text(y));
    check_finite(y.to(DType::Float32).contiguous(), what + ": y");
    std::vector<std::int64_t> want = output.shape().sizes();
    std::vector<std::int64_t> have = y.shape().sizes();
    want.erase(want.begin());
    have.erase(have.begin());
    if (want != have) {
      throw ShapeError(what + ": each target has shape " + Shape(have).to_string() + " but the model gives " +
                       Shape(want).to_string() + " per sample");
    }
  }
}

Logs Model::evaluate_prepared(const Tensor& x, const Tensor& y, std::int64_t batch_size, const std::string& prefix) {
  Compiled& c = compiled();
  autograd::NoGradGuard no_grad;
  const EvalMode eval(*module_);
  data::DataLoader loader(x, y, {.batch_size = batch_size, .shuffle = false, .device = device_});
  Tensor loss_sum = zeros({}, DType::Float64, device_);
  Tensor correct = zeros({}, DType::Int64, device_);
  for (std::size_t i = 0; i < loader.size(); ++i) {
    const data::Batch batch = loader.batch(i);
    const amp::Autocast scope = c.autocast(device_);
    const Tensor output = (*module_)(batch.inputs);
    add_(loss_sum, mul(c.loss(output, batch.labels), static_cast<double>(batch.inputs.shape()[0])));
    if (c.accuracy) add_(correct, c.correct(output, batch.labels));
  }
  const auto n = static_cast<double>(loader.num_samples());
  Logs logs{{prefix + "loss", loss_sum.item<double>() / n}};
  if (c.accuracy) logs[prefix + "accuracy"] = correct.item<double>() / n;
  return logs;
}

Logs Model::evaluate(const Tensor& x, const Tensor& y, std::int64_t batch_size) {
  if (batch_size <= 0) throw ValueError("evaluate: batch_size must be positive");
  const Tensor xs = prepare_inputs(x, "evaluate: x");
  Tensor ys = y.detach().to(kCPU).contiguous();
  check_data(xs, ys, "evaluate");
  if (compiled().targets == Compiled::Targets::ClassIndices) ys = ys.to(DType::Int64);
  if (is_floating(ys.dtype())) ys = ys.to(DType::Float32);
  if (xla_) return evaluate_xla(xs, ys, batch_size, "");
  return evaluate_prepared(xs, ys, batch_size, "");
}

Tensor Model::predict(const Tensor& x, std::int64_t batch_size) {
  if (batch_size <= 0) throw ValueError("predict: batch_size must be positive");
  const Tensor xs = prepare_inputs(x, "predict: x");
  if (xla_) return predict_xla(xs, batch_size);
  autograd::NoGradGuard no_grad;
  const EvalMode eval(*module_);
  data::DataLoader loader(xs, zeros({xs.shape()[0]}, DType::Int64),
                          {.batch_size = batch_size, .shuffle = false, .device = device_});
  Tensor out;
  std::int64_t row = 0;
  for (std::size_t i = 0; i < loader.size(); ++i) {
    Tensor output;
    {
      const amp::Autocast scope =
          compiled_ ? compiled_->autocast(device_) : amp::Autocast(device_.type, DType::BFloat16, false);
      output = (*module_)(loader.batch(i).inputs);
    }
    output = output.to(kCPU).to(DType::Float32).contiguous();
    const std::int64_t rows = loader.batch_indices(i).size();
    if (output.dim() < 1 || output.shape()[0] != rows) {
      throw ShapeError("predict: the model gave " + output.shape().to_string() + " for a batch of " +
                       std::to_string(rows) + " samples; its output needs one row per sample");
    }
    if (!out.defined()) {
      std::vector<std::int64_t> shape = output.shape().sizes();
      shape[0] = xs.shape()[0];
      out = empty(Shape(shape), DType::Float32);
    }
    const std::int64_t per_row = output.numel() / output.shape()[0];
    std::memcpy(out.data_ptr<float>() + row * per_row, output.data_ptr<float>(),
                static_cast<std::size_t>(output.numel()) * sizeof(float));
    row += output.shape()[0];
  }
  return out;
}

void Model::save(const std::string& path) const {
  save_safetensors(path, module_->state_dict(), {{"format", "pt"}, {"accel.module", module_->to_string()}});
}

void Model::load(const std::string& path) {
  const SafetensorsFile file = load_safetensors(path);
  try {
    module_->load_state_dict(file.tensors);
  } catch (const Error& e) {
    throw DataError(path + ": its weights do not fit this model: " + e.what());
  }
}

Model::FitData Model::prepare_fit(const Tensor& x, const Tensor& y, const FitOptions& options) {
  const Compiled& c = compiled();
  if (options.epochs < 0) throw ValueError("fit: epochs must be >= 0, got " + std::to_string(options.epochs));
  if (options.batch_size <= 0) {
    throw ValueError("fit: batch_size must be positive, got " + std::to_string(options.batch_size));
  }
  if (options.verbose < 0 || options.verbose > 2) throw ValueError("fit: verbose must be 0, 1 or 2");
  const std::int64_t validation_batch = options.validation_batch_size.value_or(options.batch_size);
  if (validation_batch <= 0) throw ValueError("fit: validation_batch_size must be positive");
  if (!(options.validation_split >= 0.0 && options.validation_split < 1.0)) {
    throw ValueError("fit: validation_split must be in [0, 1), got " + std::to_string(options.validation_split));
  }
  if (options.validation_split > 0 && options.validation_data) {
    throw ValueError("fit: pass validation_split or validation_data, not both");
  }
  for (const auto& callback : options.callbacks) {
    if (!callback) throw ValueError("fit: a callback is null");
  }
  // The whole data set is checked before the first step.
  Tensor xs = prepare_training_inputs(x, "fit: x");
  Tensor ys = y.detach().to(kCPU).contiguous();
  check_data(xs, ys, "fit");
  const auto as_targets = [&](Tensor t) {
    return c.targets == Compiled::Targets::ClassIndices ? t.to(DType::Int64) : t.to(DType::Float32);
  };
  ys = as_targets(ys);
  Tensor val_x, val_y;
  if (options.validation_split > 0) {
    const std::int64_t n = xs.shape()[0];
    const auto split_at = static_cast<std::int64_t>(static_cast<double>(n) * (1.0 - options.validation_split));
    if (split_at <= 0 || split_at >= n) {
      throw ValueError("fit: validation_split " + std::to_string(options.validation_split) + " of " +
                       std::to_string(n) + " samples leaves no training or no validation samples");
    }
    val_x = prepare_inputs(xs.slice(0, split_at, n), "fit: x");
    val_y = ys.slice(0, split_at, n).contiguous();
    xs = xs.slice(0, 0, split_at).contiguous();
    ys = ys.slice(0, 0, split_at).contiguous();
  } else if (options.validation_data) {
    val_x = prepare_inputs(options.validation_data->first, "fit: validation_data x");
    val_y = options.validation_data->second.detach().to(kCPU).contiguous();
    check_data(val_x, val_y, "fit: validation_data");
    val_y = as_targets(val_y);
  }
  return {xs, ys, val_x, val_y, validation_batch};
}

History Model::fit(const Tensor& x, const Tensor& y, const FitOptions& options) {
  if (xla_) return fit_xla(x, y, options);
  Compiled& c = compiled();
  auto [xs, ys, val_x, val_y, validation_batch] = prepare_fit(x, y, options);
  const bool validation = val_x.defined();
  const std::vector<std::string> names = log_names(validation);
  if (!options.checkpoint_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(options.checkpoint_dir, error);
    if (error || ::access(options.checkpoint_dir.c_str(), W_OK) != 0) {
      throw Error("fit: cannot write checkpoints to " + options.checkpoint_dir + " (" +
                  (error ? error.message() : std::string(std::strerror(errno))) + ")");
    }
  }

  data::DataLoader loader(
      xs, ys, {.batch_size = options.batch_size, .shuffle = options.shuffle, .seed = options.seed, .device = device_});
  // The epoch's loss (weighted by batch size) and correct count add up on the device, inside the
  // step, so a replayed step accumulates them too and no step reads the host.
  Tensor loss_sum = zeros({}, DType::Float64, device_);
  Tensor correct = zeros({}, DType::Int64, device_);
  optim::Optimizer& optimizer = *c.optimizer;
  amp::GradScaler& scaler = *c.scaler;
  const auto add_to_totals = [&](const Tensor& output, const Tensor& loss, const Tensor& targets) {
    autograd::NoGradGuard no_grad;
    add_(loss_sum, mul(loss.detach(), static_cast<double>(targets.shape()[0])));
    if (c.accuracy) add_(correct, c.correct(output.detach(), targets));
  };
  const auto one_step = [&](const Tensor& inputs, const Tensor& targets) {
    optimizer.zero_grad();
    Tensor output, loss;
    {
      const amp::Autocast scope = c.autocast(device_);
      output = (*module_)(inputs);
      loss = c.loss(output, targets);
    }
    scaler.scale(loss).backward();
    scaler.step(optimizer);
    scaler.update();
    add_to_totals(output, loss, targets);
    return loss;
  };
  // Gradient accumulation: batch i belongs to the group of `accumulate` batches starting at
  // i / accumulate * accumulate (an epoch's last group may be shorter); the optimizer steps
  // after the group's last batch, over the mean of its losses.
  const auto steps_in_epoch = static_cast<std::int64_t>(loader.size());
  const auto group_of = [&](std::int64_t i) {
    const std::int64_t start = i / c.accumulate * c.accumulate;
    return std::make_pair(start, std::min<std::int64_t>(c.accumulate, steps_in_epoch - start));
  };
  const auto micro_step = [&](std::int64_t i, const Tensor& inputs, const Tensor& targets) {
    const auto [start, size] = group_of(i);
    if (i == start) optimizer.zero_grad();
    Tensor output, loss;
    {
      const amp::Autocast scope = c.autocast(device_);
      output = (*module_)(inputs);
      loss = c.loss(output, targets);
    }
    scaler.scale(size == 1 ? loss : mul(loss, 1.0 / static_cast<double>(size))).backward();
    if (i + 1 == start + size) {
      scaler.step(optimizer);
      scaler.update();
    }
    add_to_totals(output, loss, targets);
    return loss;
  };
  CapturedStep step(one_step, c.capture && c.accumulate == 1);
  c.active_step = &step;
  struct ClearActive {
    Compiled& c;
    ~ClearActive() { c.active_step = nullptr; }
  } clear_active{c};

  History history;
  int first_epoch = 0;
  std::int64_t first_batch = 0, samples = 0;
  if (!options.checkpoint_dir.empty() && options.resume) {
    if (auto saved = load_training_checkpoint(options.checkpoint_dir)) {
      const std::string path = training_checkpoint_path(options.checkpoint_dir);
      try {
        // What next_batch counts in must be what this run counts in, or samples would be skipped
        // or seen twice without any other sign.
        if (saved->batch_size != options.batch_size || saved->accumulate != c.accumulate ||
            saved->train_samples != xs.shape()[0]) {
          throw ValueError("it was made with batch size " + std::to_string(saved->batch_size) + ", accumulation " +
                           std::to_string(saved->accumulate) + " and " + std::to_string(saved->train_samples) +
                           " training samples; this run has " + std::to_string(options.batch_size) + ", " +
                           std::to_string(c.accumulate) + " and " + std::to_string(xs.shape()[0]));
        }
        module_->load_state_dict(saved->model);
        optimizer.load_state_dict(saved->optimizer);
        if (scaler.is_enabled() || !saved->scaler.empty()) scaler.load_state_dict(saved->scaler);
        loader.restore(std::move(saved->order), saved->shuffle_state);
        default_generator().set_state(saved->global_rng_state);
        set_dropout_counters(default_generator(), saved->dropout_counters);
      } catch (const Error& e) {
        throw DataError(path + " does not fit this run: " + e.what() +
                        " (same model, optimizer and data as the run that wrote it? else remove it)");
      }
      {
        autograd::NoGradGuard no_grad;
        copy_(loss_sum, saved->loss_sum);
        copy_(correct, saved->correct);
      }
      history = std::move(saved->history);
      first_epoch = saved->epoch;
      first_batch = saved->next_batch;
      samples = saved->samples_seen;
      if (options.verbose > 0 && first_epoch < options.epochs) {
        std::fprintf(options.out, "Resuming from %s: epoch %d, batch %lld\n", path.c_str(), first_epoch + 1,
                     static_cast<long long>(first_batch));
      }
    }
  }
  const auto save_checkpoint = [&](int epoch, std::int64_t next_batch) {
    TrainingCheckpoint checkpoint{.model = module_->state_dict(),
                                  .optimizer = optimizer.state_dict(),
                                  .scaler = scaler.is_enabled() ? scaler.state_dict() : std::map<std::string, Tensor>{},
                                  .epoch = epoch,
                                  .next_batch = next_batch,
                                  .samples_seen = samples,
                                  .order = loader.order(),
                                  .shuffle_state = loader.shuffle_state(),
                                  .global_rng_state = default_generator().state(),
                                  .dropout_counters = dropout_counters(default_generator()),
                                  .batch_size = options.batch_size,
                                  .accumulate = c.accumulate,
                                  .train_samples = xs.shape()[0],
                                  .loss_sum = loss_sum,
                                  .correct = correct,
                                  .history = history};
    save_training_checkpoint(options.checkpoint_dir, checkpoint);
    save(options.checkpoint_dir + "/model.safetensors");
  };

  std::optional<SigtermWatch> sigterm;
  if (!options.checkpoint_dir.empty()) sigterm.emplace();
  const bool batch_losses = std::any_of(options.callbacks.begin(), options.callbacks.end(),
                                        [](const auto& cb) { return cb->wants_batch_loss(); });
  ProgressBar progress(options.out, options.verbose, ::isatty(::fileno(options.out)) == 1);
  const auto running = [&] {
    const double n = samples > 0 ? static_cast<double>(samples) : 1.0;
    ProgressValues values = {{"loss", loss_sum.item<double>() / n}};
    if (c.accuracy) values.emplace_back("accuracy", correct.item<double>() / n);
    return values;
  };

  if (options.prefetch_batches < -1) throw ValueError("fit: prefetch_batches must be >= 0 (or -1: automatic)");
  // On a device the batches come from the data set kept there (each gathered by a kernel) or
  // through pinned staging buffers on a copy stream; on the CPU straight from the loader, or
  // from a prefetching thread when asked for.
  const bool on_device = !device_.is_cpu();
  const bool fits_on_device =
      on_device && data::device_bytes(loader) <= memory::caching_allocator(device_).mem_get_info().first / 4;
  std::optional<data::DeviceBatches> resident;
  if (on_device && (options.device_data == DeviceData::Resident ||
                    (options.device_data == DeviceData::Automatic && fits_on_device))) {
    resident.emplace(loader, device_);
  }
  const bool staged = on_device && !resident;
  const std::size_t prefetch = staged ? (options.prefetch_batches < 0 ? 3 : std::max(options.prefetch_batches, 1))
                                      : static_cast<std::size_t>(std::max(options.prefetch_batches, 0));
  data_mode_ = resident ? "resident on the device: each batch gathered there"
               : staged ? "staged: pinned host buffers copied on a copy stream, " + std::to_string(prefetch) + " ahead"
               : prefetch ? "on the host: a thread gathers " + std::to_string(prefetch) + " batches ahead"
                          : "on the host: each batch gathered by the step's threads";
  std::optional<ThreadTuner> tuner;
  if (options.tune_threads) {
    tuner.emplace(ThreadTunerOptions{.max_threads = hw::usable_cpus()});
    set_num_threads(tuner->threads());
  }
  stop_training = false;
  epoch_seconds_.clear();
  epoch_samples_.clear();
  for (const auto& callback : options.callbacks) callback->on_train_begin(*this, names);
  if (!history.epoch.empty()) {
    for (const auto& callback : options.callbacks) callback->on_resume(*this, history);
  }
  module_->train(true);
  const auto interrupted = [&](int epoch, std::int64_t next_batch) {
    save_checkpoint(epoch, next_batch);
    if (options.verbose > 0) std::fprintf(options.out, "\n");
    return TrainingInterrupted(training_checkpoint_path(options.checkpoint_dir), epoch, next_batch);
  };
  for (int epoch = first_epoch; epoch < options.epochs && !stop_training; ++epoch) {
    if (epoch != first_epoch || first_batch == 0) {
      autograd::NoGradGuard no_grad;
      zero_(loss_sum);
      zero_(correct);
      samples = 0;
    }
    const bool partial = epoch == first_epoch && first_batch > 0;
    bool cut_short = false;
    const double saved_lr = optimizer.lr();
    for (const auto& callback : options.callbacks) callback->on_epoch_begin(*this, epoch);
    // A resumed epoch began in the run that wrote the checkpoint: its rate is the saved one (a
    // schedule of the current rate would otherwise apply twice).
    if (partial && optimizer.lr() != saved_lr) set_learning_rate(saved_lr);
    const std::int64_t steps = steps_in_epoch;
    progress.epoch_begin(epoch, options.epochs, steps);
    const auto epoch_start = std::chrono::steady_clock::now();
    const std::int64_t start_at = epoch == first_epoch ? first_batch : 0;
    std::optional<data::BatchPrefetcher> prefetched;
    std::optional<data::StagedBatches> staged_batches;
    if (staged && start_at < steps) {
      staged_batches.emplace(loader, device_, static_cast<std::size_t>(start_at), prefetch);
    } else if (!on_device && prefetch > 0 && start_at < steps) {
      prefetched.emplace(loader, static_cast<std::size_t>(start_at), prefetch);
    }
    std::int64_t epoch_samples = 0;
    for (std::int64_t i = start_at; i < steps; ++i) {
      // SIGTERM is honoured before a step (or, with accumulation, before a group: the gradients
      // summed so far are not in a checkpoint), so at most one step or group runs after it.
      if (sigterm && sigterm->requested() && i == group_of(i).first) throw interrupted(epoch, i);
      if (tuner && tuner->threads() != get_num_threads()) set_num_threads(tuner->threads());
      const auto step_start = std::chrono::steady_clock::now();
      // A replaying step takes its batch gathered straight into its own input buffers: by the
      // host on the CPU, by a kernel where the data set is resident on the device.
      data::Batch batch;
      const auto index = static_cast<std::size_t>(i);
      const auto [x_buffer, y_buffer] = step.input_buffers();
      const bool into_buffers = c.accumulate == 1 && x_buffer.defined();
      if (staged_batches) {
        batch = staged_batches->next(into_buffers ? data::Batch{x_buffer, y_buffer} : data::Batch{});
      } else if (into_buffers && !prefetched && (resident || x_buffer.device().is_cpu())) {
        batch = {x_buffer, y_buffer};
        if (!(resident ? resident->batch_into(index, batch) : loader.batch_into(index, batch))) batch = {};
      }
      if (!batch.inputs.defined()) {
        batch = prefetched ? prefetched->next() : resident ? resident->batch(index) : loader.batch(index);
      }
      const Tensor loss =
          c.accumulate == 1 ? step.run(batch.inputs, batch.labels) : micro_step(i, batch.inputs, batch.labels);
      if (tuner) tuner->record(std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count());
      samples += batch.inputs.shape()[0];
      epoch_samples += batch.inputs.shape()[0];
      if (batch_losses) {
        const double value = loss.item<double>();
        for (const auto& callback : options.callbacks) {
          if (callback->wants_batch_loss()) callback->on_batch_end(*this, i, value);
        }
      }
      if (progress.wants_update()) progress.update(i + 1, running());
      const bool group_done = i + 1 == group_of(i).first + group_of(i).second;
      if (stop_training && group_done) {
        cut_short = i + 1 < steps;
        break;
      }
    }
    // The epoch ends when its last step has run: on an asynchronous device the host may be
    // many queued steps ahead (and the next epoch's time would otherwise include them).
    backend_for(device_).synchronize(backend_for(device_).default_stream());
    epoch_seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count());
    epoch_samples_.push_back(epoch_samples);
    prefetched.reset();  // they read the order next_epoch draws anew
    staged_batches.reset();
    // Every batch is done: a SIGTERM now resumes with the epoch's end, before validation runs.
    if (sigterm && sigterm->requested() && !cut_short) throw interrupted(epoch, steps);
    loader.next_epoch();
    ProgressValues values = running();
    if (validation) {
      for (const auto& [name, value] : evaluate_prepared(val_x, val_y, validation_batch, "val_")) {
        values.emplace_back(name, value);
      }
    }
    progress.epoch_end(values);
    Logs logs(values.begin(), values.end());
    logs["lr"] = optimizer.lr();
    history.epoch.push_back(epoch);
    for (const auto& [name, value] : logs) history.history[name].push_back(value);
    for (const auto& callback : options.callbacks) callback->on_epoch_end(*this, epoch, logs);
    // Not after an epoch cut short (TerminateOnNaN) or a non-finite loss: the checkpoint and
    // model.safetensors keep the last good weights rather than the diverged ones.
    if (!options.checkpoint_dir.empty() && !cut_short && std::isfinite(logs.at("loss"))) {
      save_checkpoint(epoch + 1, 0);
    }
  }
  const std::string graph = step.replay_mode().empty() ? "" : " " + step.replay_mode();
  step_mode_ = step.replaying()
                   ? "captured: " + std::to_string(step.kernels()) + " kernel calls replayed per step" + graph
               : c.accumulate != 1 ? "eager: gradient accumulation: a step spans several batches"
                                   : "eager: " + step.fallback_reason();
  for (const auto& callback : options.callbacks) callback->on_train_end(*this);
  return history;
}

}  // namespace accel::train
