// Model's fit, evaluate and predict on an XLA device: the same checks and the same Keras-shaped
// results as on the CPU and CUDA, with each step one compiled program (train/xla_strategy.h).
// Supported here: epochs, batch_size (the global batch), shuffle and seed (the same order as on
// the CPU), verbose, validation_split / validation_data, callbacks (the module's weights are
// brought up to date before each epoch's callbacks run). Not yet: checkpoint_dir, mixed
// precision, gradient accumulation, losses other than sparse categorical cross-entropy: each is a
// ValueError that says so.
#include <unistd.h>
#include <algorithm>
#include <chrono>

#include "accel/data/dataloader.h"
#include "accel/train/callbacks.h"
#include "accel/train/fit_inputs.h"
#include "accel/train/model.h"
#include "accel/train/model_compiled.h"
#include "accel/train/progress_bar.h"
#include "accel/train/xla_strategy.h"

namespace accel::train {
namespace {

std::vector<std::int32_t> int32_labels(const Tensor& y) {
  const auto labels = y.to(DType::Int64).to_vector<std::int64_t>();
  return {labels.begin(), labels.end()};  // check_data bounded them by the model's classes
}

}  // namespace

Tensor Model::xla_inputs(const Tensor& x, const std::string& what) {
  const XlaMlp mlp = describe_for_xla(*module_);
  const std::int64_t n = x.shape()[0];
  if (x.dim() != 2 && !mlp.flatten_input) {
    throw ShapeError(what + " is " + x.shape().to_string() + ": this model takes [N, " +
                     std::to_string(mlp.in_features()) + "] (it has no Flatten layer first)");
  }
  Tensor flat = x.dim() == 2 ? x : x.reshape({n, x.numel() / n}).contiguous();
  if (flat.shape()[1] != mlp.in_features()) {
    throw ShapeError(what + " has " + std::to_string(flat.shape()[1]) + " features per sample (" +
                     x.shape().to_string() + "); the model's first Linear takes " + std::to_string(mlp.in_features()));
  }
  return flat;
}

void Model::check_xla_loss(const std::string& what) {
  const Compiled& c = compiled();
  const auto unsupported = [&](const std::string& thing) {
    return ValueError(what + " on " + xla_->describe() + ": " + thing + " is not supported on XLA devices yet");
  };
  if (!c.loss_by_name) throw unsupported("a loss function object (name the loss in compile's options)");
  if (c.targets != Compiled::Targets::ClassIndices) throw unsupported("the loss " + c.loss_name);
}

XlaRunner& Model::xla_runner() {
  if (!xla_runner_) {
    xla_runner_ = std::make_unique<XlaRunner>(*xla_, *module_, optimizer());
  } else if (!xla_fitting_ || !xla_runner_->has_state()) {
    // The module is the authority between calls (load(), callbacks after fit); a runner whose
    // state a failed program consumed starts again from it too.
    xla_runner_->upload_state();
  }
  return *xla_runner_;
}

Logs Model::evaluate_xla(const Tensor& x, const Tensor& y, std::int64_t batch_size, const std::string& prefix) {
  check_xla_loss("evaluate");
  const Tensor xs = xla_inputs(x, "evaluate: x");
  const auto labels = int32_labels(y);
  const XlaTotals totals = xla_runner().evaluate(xs.data_ptr<float>(), labels.data(), xs.shape()[0], batch_size);
  const auto n = static_cast<double>(xs.shape()[0]);
  Logs logs{{prefix + "loss", totals.loss_sum / n}};
  if (compiled().accuracy) logs[prefix + "accuracy"] = totals.correct / n;
  return logs;
}

Tensor Model::predict_xla(const Tensor& x, std::int64_t batch_size) {
  const Tensor xs = xla_inputs(x, "predict: x");
  XlaRunner& runner = xla_runner();
  Tensor out = empty({xs.shape()[0], runner.mlp().classes()}, DType::Float32);
  runner.predict(xs.data_ptr<float>(), xs.shape()[0], out.data_ptr<float>(), batch_size);
  return out;
}

History Model::fit_xla(const Tensor& x, const Tensor& y, const FitOptions& options) {
  Compiled& c = compiled();
  const auto unsupported = [&](const std::string& what) {
    return ValueError("fit on " + xla_->describe() + ": " + what + " is not supported on XLA devices yet");
  };
  check_xla_loss("fit");
  if (c.amp) throw unsupported("mixed precision");
  if (c.accumulate != 1) throw unsupported("gradient accumulation");
  if (!options.checkpoint_dir.empty()) throw unsupported("checkpoint_dir");
  FitData data = prepare_fit(x, y, options);
  // fit keeps uint8 images as they are for its DataLoader; the compiled step takes them scaled.
  const Tensor xs = xla_inputs(data.x.dtype() == DType::UInt8 ? data::scale_pixels(data.x) : data.x, "fit: x");
  const Tensor& ys = data.y;
  const bool validation = data.val_x.defined();
  const Tensor val_x = validation ? xla_inputs(data.val_x, "fit: validation x") : Tensor();
  const std::vector<std::int32_t> val_labels = validation ? int32_labels(data.val_y) : std::vector<std::int32_t>{};
  const std::int64_t validation_batch = data.validation_batch;

  XlaRunner& runner = xla_runner();
  // From here until fit returns, the devices hold the newest weights (see xla_fitting_).
  struct Fitting {
    bool& flag;
    explicit Fitting(bool& f) : flag(f) { flag = true; }
    ~Fitting() { flag = false; }
  } fitting{xla_fitting_};
  data::DataLoader loader(xs, ys, {.batch_size = options.batch_size, .shuffle = options.shuffle, .seed = options.seed});
  const std::vector<std::string> names = log_names(validation);
  ProgressBar progress(options.out, options.verbose, ::isatty(::fileno(options.out)) == 1);
  History history;
  stop_training = false;
  epoch_seconds_.clear();
  epoch_samples_.clear();
  for (const auto& callback : options.callbacks) callback->on_train_begin(*this, names);
  module_->train(true);
  const auto steps = static_cast<std::int64_t>(loader.size());
  // A whole epoch runs as one program (the training set on the device), unless a callback wants
  // each batch's loss: then one program per step.
  const bool batch_losses = std::any_of(options.callbacks.begin(), options.callbacks.end(),
                                        [](const auto& cb) { return cb->wants_batch_loss(); });
  const bool per_step = batch_losses;
  if (!per_step) {
    const std::vector<std::int32_t> labels = int32_labels(ys);
    runner.set_training_data(xs.data_ptr<float>(), labels.data(), xs.shape()[0]);
    runner.prepare_epoch(xs.shape()[0], options.batch_size);
  } else {
    runner.prepare_step(options.batch_size);
  }
  for (int epoch = 0; epoch < options.epochs && !stop_training; ++epoch) {
    // The rate is each step's argument: a scheduler's change here needs no recompile.
    for (const auto& callback : options.callbacks) callback->on_epoch_begin(*this, epoch);
    progress.epoch_begin(epoch, options.epochs, steps);
    const auto start = std::chrono::steady_clock::now();
    std::int64_t samples = 0;
    if (per_step) {
      for (std::int64_t i = 0; i < steps && !stop_training; ++i) {
        // Gathered on this thread: an OpenMP team would spin on the cores XLA's threads compute on.
        const data::Batch batch = loader.batch(static_cast<std::size_t>(i), /*parallel=*/false);
        const std::vector<std::int32_t> labels = int32_labels(batch.labels);
        const std::int64_t n = batch.inputs.shape()[0];
        runner.train_step(batch.inputs.data_ptr<float>(), labels.data(), n, options.batch_size);
        samples += n;
        if (batch_losses) {
          const double loss = runner.last_step_loss() / static_cast<double>(n);  // one device read
          for (const auto& callback : options.callbacks) {
            if (callback->wants_batch_loss()) callback->on_batch_end(*this, i, loss);
          }
        }
      }
    } else {
      runner.train_epoch(loader.order(), options.batch_size);
      samples = loader.num_samples();
    }
    const XlaTotals totals = runner.take_train_totals();  // waits for the epoch's last step
    epoch_seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    epoch_samples_.push_back(samples);
    loader.next_epoch();
    const auto n = static_cast<double>(samples > 0 ? samples : 1);
    ProgressValues values = {{"loss", totals.loss_sum / n}};
    if (c.accuracy) values.emplace_back("accuracy", totals.correct / n);
    if (validation) {
      const XlaTotals val =
          runner.evaluate(val_x.data_ptr<float>(), val_labels.data(), val_x.shape()[0], validation_batch);
      const auto m = static_cast<double>(val_x.shape()[0]);
      values.emplace_back("val_loss", val.loss_sum / m);
      if (c.accuracy) values.emplace_back("val_accuracy", val.correct / m);
    }
    progress.epoch_end(values);
    runner.download_state();
    Logs logs(values.begin(), values.end());
    logs["lr"] = optimizer().lr();
    history.epoch.push_back(epoch);
    for (const auto& [name, value] : logs) history.history[name].push_back(value);
    for (const auto& callback : options.callbacks) callback->on_epoch_end(*this, epoch, logs);
  }
  step_mode_ =
      std::string("xla: one compiled PJRT program per ") + (per_step ? "step" : "epoch") + " on " + xla_->describe();
  for (const auto& callback : options.callbacks) callback->on_train_end(*this);
  return history;
}

}  // namespace accel::train
