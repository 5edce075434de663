#include "accel/train/seed_trainer.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>

#include "accel/autograd/grad_mode.h"
#include "accel/backends/backend.h"
#include "accel/data/dataloader.h"
#include "accel/data/train_test_data.h"
#include "accel/hw/host_info.h"              // usable_cpus
#include "accel/memory/device_allocators.h"  // caching_allocator: peaks and the fraction cap
#include "accel/nn/layers.h"
#include "accel/ops/autocast.h"
#include "accel/ops/ops.h"
#include "accel/train/callbacks.h"
#include "accel/train/model.h"
#include "accel/train/training_checkpoint.h"
#include "accel/train/xla_strategy.h"

namespace accel::train {
namespace {

// Each epoch's logs as EpochStats, passed on as they come.
class EpochReporter : public Callback {
 public:
  EpochReporter(TrainReport& report, bool tuned, const std::function<void(const EpochStats&)>& on_epoch)
      : report_(report), tuned_(tuned), on_epoch_(on_epoch) {}

  void on_epoch_end(Model& model, int epoch, const Logs& logs) override {
    EpochStats stats;
    stats.epoch = epoch + 1;
    stats.train_loss = logs.at("loss");
    stats.train_seconds = model.epoch_seconds().back();
    // The samples this process trained: fewer than the epoch's in an epoch it resumed.
    stats.samples_per_second =
        stats.train_seconds > 0 ? static_cast<double>(model.epoch_samples().back()) / stats.train_seconds : 0.0;
    stats.test_accuracy = logs.at("val_accuracy");
    stats.test_loss = logs.at("val_loss");
    // On an XLA device the plugin's own threads compute: accel's count says nothing.
    stats.threads = model.xla_strategy() ? 0 : get_num_threads();
    stats.tuned = tuned_ && !model.xla_strategy();
    report_.epochs.push_back(stats);
    if (on_epoch_) on_epoch_(stats);
  }

 private:
  TrainReport& report_;
  bool tuned_;
  const std::function<void(const EpochStats&)>& on_epoch_;
};

std::string describe_layers(const std::vector<std::int64_t>& layers) {
  std::string text;
  for (const std::int64_t width : layers) {
    if (!text.empty()) text += '-';
    text += std::to_string(width);
  }
  return text + " MLP";
}

std::shared_ptr<optim::Optimizer> make_optimizer(const SeedConfig& config, const std::vector<Tensor>& params) {
  if (config.optimizer == "sgd") {
    return std::make_shared<optim::SGD>(
        params, optim::SGDOptions{
                    .lr = config.lr, .momentum = config.momentum, .weight_decay = config.weight_decay.value_or(0.0)});
  }
  if (config.momentum != 0.0) throw ValueError("train: --momentum applies to --optimizer sgd");
  if (config.optimizer == "adam") {
    return std::make_shared<optim::Adam>(
        params, optim::AdamOptions{.lr = config.lr, .weight_decay = config.weight_decay.value_or(0.0)});
  }
  if (config.optimizer == "adamw") {
    optim::AdamWOptions options;
    options.lr = config.lr;
    if (config.weight_decay) options.weight_decay = *config.weight_decay;
    return std::make_shared<optim::AdamW>(params, options);
  }
  throw ValueError("train: --optimizer must be adam, adamw or sgd, got '" + config.optimizer + "'");
}

}  // namespace

double evaluate_accuracy(nn::Module& model, const data::LabelledImages& data, Device device, std::int64_t batch_size) {
  autograd::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  data::DataLoader loader(data.images, data.labels, {.batch_size = batch_size, .shuffle = false, .device = device});
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < loader.size(); ++i) {
    const data::Batch batch = loader.batch(i);
    correct += sum(eq(argmax(model(batch.inputs), 1), batch.labels)).item<std::int64_t>();
  }
  model.train(was_training);
  return loader.num_samples() ? static_cast<double>(correct) / static_cast<double>(loader.num_samples()) : 0.0;
}

std::vector<std::int64_t> seed_layers(const SeedConfig& config, std::int64_t features, std::int64_t classes,
                                      const std::string& data_file) {
  std::vector<std::int64_t> layers = config.layers;
  if (layers.empty()) layers = {features, config.hidden, classes};
  if (layers.size() < 2) throw ValueError("train: --layers needs at least an input and an output width");
  for (const std::int64_t width : layers) {
    if (width <= 0) throw ValueError("train: --layers widths must be positive, got " + std::to_string(width));
  }
  if (layers.front() != features) {
    throw ValueError("train: --layers starts at " + std::to_string(layers.front()) + " inputs, but " + data_file +
                     " has " + std::to_string(features) + " values per image");
  }
  if (layers.back() < classes) {
    throw ValueError("train: --layers ends at " + std::to_string(layers.back()) + " outputs, but " + data_file +
                     " has labels up to " + std::to_string(classes - 1) + " (" + std::to_string(classes) + " classes)");
  }
  return layers;
}

TrainReport train_seed_model(const SeedConfig& config, const std::function<void(const EpochStats&)>& on_epoch,
                             const std::function<void(const TrainReport&)>& on_ready) {
  if (config.epochs < 0) throw ValueError("train: --epochs must be >= 0, got " + std::to_string(config.epochs));
  if (config.hidden <= 0) throw ValueError("train: --hidden must be positive, got " + std::to_string(config.hidden));
  if (config.accumulate < 1) {
    throw ValueError("train: --accumulate must be >= 1, got " + std::to_string(config.accumulate));
  }
  if (config.amp != "off" && config.amp != "bf16" && config.amp != "fp16") {
    throw ValueError("train: --amp must be off, bf16 or fp16, got '" + config.amp + "'");
  }
  const std::map<std::string, DeviceData> placements{
      {"auto", DeviceData::Automatic}, {"resident", DeviceData::Resident}, {"staged", DeviceData::Staged}};
  if (!placements.contains(config.device_data)) {
    throw ValueError("train: --device-data must be auto, resident or staged, got '" + config.device_data + "'");
  }
  if (!(config.dropout >= 0.0 && config.dropout < 1.0)) {
    throw ValueError("train: --dropout must be in [0, 1), got " + std::to_string(config.dropout));
  }
  if (config.threads < 0) throw ValueError("train: --threads must be >= 0, got " + std::to_string(config.threads));
  if (config.threads > 0) set_num_threads(config.threads);
  if (!config.save_path.empty()) {  // found out now, not after the training it would lose
    const std::filesystem::path folder = std::filesystem::path(config.save_path).parent_path();
    if (!folder.empty() && !std::filesystem::is_directory(folder))
      throw ValueError("--save " + config.save_path + ": the folder " + folder.string() + " does not exist");
  }
  if (!config.checkpoint_dir.empty() && !config.resume &&
      std::filesystem::exists(training_checkpoint_path(config.checkpoint_dir))) {
    throw ValueError("--checkpoint-dir " + config.checkpoint_dir +
                     " holds the checkpoint of an earlier run: pass --resume to carry on from it, or remove it");
  }
  TrainReport report;
  std::optional<XlaStrategy> xla;
  if (const std::string spec = leased_device_spec(config.device); names_xla_device(spec)) {
    if (config.memory_fraction) {
      throw ValueError("--memory-fraction caps a cuda or sim device's memory, not an XLA one");
    }
    // --device tpu takes libtpu unless a plugin is named (ACCEL_PJRT_PLUGIN names one too).
    const bool env_plugin = std::getenv("ACCEL_PJRT_PLUGIN") != nullptr;
    xla.emplace(config.pjrt_plugin.empty() && spec.starts_with("tpu") && !env_plugin ? "tpu" : config.pjrt_plugin,
                config.replicas);
    if (spec.starts_with("tpu") && xla->device_kind() != "tpu") {
      throw DeviceError("--device " + spec + ": the PJRT plugin " + xla->client().plugin().path() +
                        " is not a TPU's (platform " + xla->client().platform_name() + ")");
    }
    if (spec != config.device) report.device_note = "auto: using " + spec + " from ACCEL_DEVICE (the runtime's lease)";
    report.device = kCPU;
    report.device_text = xla->describe();
  } else {
    if (config.replicas != 1 || !config.pjrt_plugin.empty()) {
      throw ValueError("--replicas and --pjrt-plugin apply to XLA devices (--device xla or tpu)");
    }
    report.device = resolve_device(config.device, &report.device_note);
    report.device_text = report.device.describe();
  }
  const Device device = report.device;
  if (xla) {
    // The plugin holds the memory; accel's allocators see none of it.
  } else if (device.is_cpu()) {
    if (config.memory_fraction) {
      throw ValueError(
          "--memory-fraction caps a cuda or sim device's memory; host memory has no such cap (use a "
          "sim device to rehearse a budget: --device sim)");
    }
    memory::host_allocator().reset_peak_stats();
  } else {
    memory::CachingAllocator& allocator = memory::caching_allocator(device);
    if (config.memory_fraction) allocator.set_per_process_memory_fraction(*config.memory_fraction);
    allocator.reset_peak_memory_stats();
  }

  const data::TrainTestData data = data::load_train_test(config.data_dir, config.test_data);
  const data::LabelledImages& train_set = data.train;
  const data::LabelledImages& test_set = data.test;
  const std::vector<std::int64_t> layers =
      seed_layers(config, train_set.images.shape()[1], data.classes, train_set.images_file);
  report.model = describe_layers(layers);

  Generator init(config.seed);
  auto model_layers = std::make_shared<nn::Sequential>();
  for (std::size_t i = 0; i + 1 < layers.size(); ++i) {
    model_layers->push_back(std::make_shared<nn::Linear>(layers[i], layers[i + 1], true, init));
    if (i + 2 < layers.size()) {
      model_layers->push_back(std::make_shared<nn::ReLU>());
      if (config.dropout > 0) model_layers->push_back(std::make_shared<nn::Dropout>(config.dropout));
    }
  }
  Model model = xla ? Model(model_layers, *xla) : Model(model_layers, device);
  model.compile(make_optimizer(config, model.module().parameters()), nullptr,
                {.loss = "sparse_categorical_crossentropy",
                 .metrics = {"accuracy"},
                 .amp = config.amp,
                 .capture = config.capture,
                 .gradient_accumulation_steps = config.accumulate});

  // uint8 images as they are: fit's DataLoader scales each batch's pixels / 255 exactly as
  // ToTensor divides, and a device keeps the set in a quarter of the bytes of float32.
  const Tensor& x_train = train_set.images;
  const Tensor& x_test = test_set.images;
  const bool split = config.validation_split > 0;
  report.held_out = split ? "validation" : "test";
  FitOptions fit{.epochs = config.epochs,
                 .batch_size = config.batch_size,
                 .verbose = config.verbose,
                 .validation_split = config.validation_split,
                 .validation_batch_size = 1000,
                 .seed = config.seed + 1,
                 .callbacks = {std::make_shared<EpochReporter>(report, config.threads == 0, on_epoch)},
                 .checkpoint_dir = config.checkpoint_dir,
                 .resume = config.resume,
                 .tune_threads = config.threads == 0,
                 .device_data = placements.at(config.device_data)};
  if (!split) fit.validation_data = std::make_pair(x_test, test_set.labels);
  if (config.resume && !config.checkpoint_dir.empty()) {
    if (const auto saved = load_training_checkpoint(config.checkpoint_dir)) {
      report.resumed_from = training_checkpoint_path(config.checkpoint_dir) + ": epoch " +
                            std::to_string(saved->epoch + 1) + ", batch " + std::to_string(saved->next_batch);
    }
  }
  if (on_ready) on_ready(report);
  report.history = model.fit(x_train, train_set.labels, fit);
  if (split) report.final_test_accuracy = model.evaluate(x_test, test_set.labels, 1000).at("accuracy");

  if (!config.save_path.empty()) model.save(config.save_path);
  report.step_mode = !config.capture          ? "eager: --eager"
                     : config.accumulate != 1 ? "eager: --accumulate: a step spans several batches"
                                              : model.step_mode();
  report.data_mode = model.data_mode();
  if (xla) {
    // Nothing to report: the plugin's memory.
  } else if (device.is_cpu()) {
    report.memory.peak_allocated = memory::host_allocator().stats().peak_allocated_bytes;
  } else {
    const memory::CachingAllocator& allocator = memory::caching_allocator(device);
    report.memory.peak_allocated = allocator.max_memory_allocated();
    report.memory.peak_reserved = allocator.max_memory_reserved();
    report.memory.summary = allocator.memory_summary();
  }
  return report;
}

}  // namespace accel::train
