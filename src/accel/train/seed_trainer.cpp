#include "accel/train/seed_trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "accel/amp/grad_scaler.h"
#include "accel/autograd/grad_mode.h"
#include "accel/backends/backend.h"
#include "accel/data/dataloader.h"
#include "accel/hw/host_info.h"              // usable_cpus
#include "accel/memory/device_allocators.h"  // caching_allocator: peaks and the fraction cap
#include "accel/nn/layers.h"
#include "accel/ops/autocast.h"
#include "accel/ops/ops.h"
#include "accel/optim/optimizer.h"
#include "accel/tensor/safetensors.h"
#include "accel/train/captured_step.h"
#include "accel/train/thread_tuner.h"

namespace accel::train {

Device resolve_device(const std::string& spec, std::string* note) {
  // Inside a runtime of `accel serve`, "auto" means the runtime's lease (ACCEL_DEVICE).
  if (const char* leased = std::getenv("ACCEL_DEVICE"); spec == "auto" && leased && *leased) {
    const Device device(leased);
    backend_for(device);
    if (note) *note = std::string("auto: using ") + device.describe() + " from ACCEL_DEVICE (the runtime's lease)";
    return device;
  }
  if (spec != "auto") {
    const Device device(spec);
    backend_for(device);  // throws DeviceError with the reason when it cannot be used
    return device;
  }
  try {
    backend_for(Device(DeviceType::CUDA, 0));
    if (note) *note = "auto: using cuda:0";
    return Device(DeviceType::CUDA, 0);
  } catch (const DeviceError& e) {
    if (note) *note = std::string("auto: using cpu (") + e.what() + ")";
    return kCPU;
  }
}

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

TrainReport train_seed_model(const SeedConfig& config, const std::function<void(const EpochStats&)>& on_epoch) {
  if (config.epochs < 0) throw ValueError("train: --epochs must be >= 0, got " + std::to_string(config.epochs));
  if (config.hidden <= 0) throw ValueError("train: --hidden must be positive, got " + std::to_string(config.hidden));
  if (config.accumulate < 1) {
    throw ValueError("train: --accumulate must be >= 1, got " + std::to_string(config.accumulate));
  }
  std::optional<DType> amp_dtype;
  if (config.amp == "bf16") {
    amp_dtype = DType::BFloat16;
  } else if (config.amp == "fp16") {
    amp_dtype = DType::Float16;
  } else if (config.amp != "off") {
    throw ValueError("train: --amp must be off, bf16 or fp16, got '" + config.amp + "'");
  }
  if (config.threads < 0) throw ValueError("train: --threads must be >= 0, got " + std::to_string(config.threads));
  // --threads 0: measured while training (a busy neighbour can make fewer threads faster).
  std::optional<ThreadTuner> tuner;
  if (config.threads == 0) {
    tuner.emplace(ThreadTunerOptions{.max_threads = hw::usable_cpus()});
    set_num_threads(tuner->threads());
  } else {
    set_num_threads(config.threads);
  }
  if (!config.save_path.empty()) {  // found out now, not after the training it would lose
    const std::filesystem::path folder = std::filesystem::path(config.save_path).parent_path();
    if (!folder.empty() && !std::filesystem::is_directory(folder))
      throw ValueError("--save " + config.save_path + ": the folder " + folder.string() + " does not exist");
  }
  TrainReport report;
  report.device = resolve_device(config.device, &report.device_note);
  const Device device = report.device;
  if (device.is_cpu()) {
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

  const data::LabelledImages train_set = data::load_fashion_mnist(config.data_dir, true);
  const data::LabelledImages test_set = data::load_fashion_mnist(config.data_dir, false);
  const std::int64_t features = train_set.images.shape()[1];

  Generator init(config.seed);
  nn::Sequential model(nn::Linear(features, config.hidden, true, init), nn::ReLU(),
                       nn::Linear(config.hidden, 10, true, init));
  model.to(device);
  model.pack_parameters();  // one fused Adam kernel over flat buffers, fixed gradient addresses
  optim::Adam optimizer(model.parameters(), {.lr = config.lr});
  nn::CrossEntropyLoss criterion;
  // float16's range needs loss scaling; bfloat16 has float32's range and does not.
  amp::GradScaler scaler(device, {.enabled = amp_dtype == DType::Float16});
  const auto autocast = [&] {
    return amp::Autocast(device.type, amp_dtype.value_or(DType::BFloat16), amp_dtype.has_value());
  };
  data::DataLoader loader(
      train_set.images, train_set.labels,
      {.batch_size = config.batch_size, .shuffle = true, .seed = config.seed + 1, .device = device});

  // One whole step as a function of its batch, so it can be captured and replayed. Gradient
  // accumulation spreads a step over several batches and runs eagerly.
  const auto one_step = [&](const Tensor& inputs, const Tensor& labels) {
    optimizer.zero_grad();
    Tensor loss;
    {
      const amp::Autocast scope = autocast();
      loss = criterion(model(inputs), labels);
    }
    scaler.scale(loss).backward();
    scaler.step(optimizer);
    scaler.update();
    return loss;
  };
  CapturedStep captured(one_step, config.capture && config.accumulate == 1);
  const std::string eager_reason = !config.capture          ? "--eager"
                                   : config.accumulate != 1 ? "--accumulate: a step spans several batches"
                                                            : "";

  for (int epoch = 1; epoch <= config.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    // The epoch's loss adds up on the device: no host read per step (a captured step could not
    // replay one, and on a GPU each would be a synchronisation).
    Tensor loss_total = zeros({}, DType::Float64, device);
    const auto micro = static_cast<std::size_t>(config.accumulate);
    for (std::size_t i = 0; i < loader.size(); ++i) {
      if (tuner && tuner->threads() != get_num_threads()) set_num_threads(tuner->threads());
      const auto step_start = std::chrono::steady_clock::now();
      const data::Batch batch = loader.batch(i);
      if (micro == 1) {
        const Tensor loss = captured.run(batch.inputs, batch.labels);
        autograd::NoGradGuard no_grad;
        add_(loss_total, loss.detach());
        if (tuner) tuner->record(std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count());
        continue;
      }
      const std::size_t group_start = i / micro * micro;
      const std::size_t group_size = std::min(micro, loader.size() - group_start);
      if (i == group_start) optimizer.zero_grad();
      Tensor loss;
      {
        const amp::Autocast scope = autocast();
        loss = criterion(model(batch.inputs), batch.labels);
      }
      scaler.scale(group_size == 1 ? loss : mul(loss, 1.0 / static_cast<double>(group_size))).backward();
      if (i + 1 == group_start + group_size) {
        scaler.step(optimizer);
        scaler.update();
      }
      {
        autograd::NoGradGuard no_grad;
        add_(loss_total, loss.detach());
      }
      if (tuner) tuner->record(std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count());
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    loader.next_epoch();
    EpochStats stats;
    stats.epoch = epoch;
    stats.train_loss = loader.size() ? loss_total.item<double>() / static_cast<double>(loader.size()) : 0.0;
    stats.train_seconds = seconds;
    stats.samples_per_second = seconds > 0 ? static_cast<double>(loader.num_samples()) / seconds : 0.0;
    stats.threads = get_num_threads();
    stats.tuned = tuner.has_value();
    {
      const amp::Autocast scope = autocast();  // evaluated in the precision it trained in
      stats.test_accuracy = evaluate_accuracy(model, test_set, device);
    }
    report.epochs.push_back(stats);
    if (on_epoch) on_epoch(stats);
  }
  if (!config.save_path.empty()) {
    save_safetensors(config.save_path, model.state_dict(),
                     {{"format", "pt"}, {"accel.model", "784-" + std::to_string(config.hidden) + "-10 MLP"}});
  }
  report.step_mode = captured.replaying()
                         ? "captured: " + std::to_string(captured.kernels()) + " kernel calls replayed per step"
                         : "eager: " + (eager_reason.empty() ? captured.fallback_reason() : eager_reason);
  if (device.is_cpu()) {
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
