// accel train: the seed's model on Fashion-MNIST, with the device's memory use at the end.
#include <cstdio>
#include <string>

#include "accel/backends/backend.h"
#include "accel/memory/device_allocators.h"
#include "accel/train/model.h"
#include "accel/train/seed_trainer.h"
#include "accel/train/xla_strategy.h"
#include "commands.h"
#include "curve_plot.h"

namespace accel::cli {
namespace {

const char* optimizer_title(const std::string& name) {
  return name == "adamw" ? "AdamW" : name == "sgd" ? "SGD" : "Adam";
}

std::string mib_text(std::int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / 1048576.0);
  return text;
}

// What ran the GEMMs: the device's backend says (an XLA device's compiler picks its own).
std::string gemm_library(Device device) {
  if (device.is_cpu() || device.is_sim() || device.is_cuda()) return backend_for(device).gemm_library();
  return "the XLA compiler's";
}

void print_json(const train::TrainReport& report, const train::SeedConfig& config) {
  std::printf(
      "{\"device\": \"%s\", \"simulated\": %s, \"gemm\": \"%s\", \"batch_size\": %lld, \"accumulate\": %d, "
      "\"amp\": \"%s\", \"step\": \"%s\", \"data\": \"%s\", \"peak_allocated\": %lld, \"epochs\": [",
      report.device_text.c_str(), report.device.is_sim() ? "true" : "false", gemm_library(report.device).c_str(),
      static_cast<long long>(config.batch_size), config.accumulate, config.amp.c_str(), report.step_mode.c_str(),
      report.data_mode.c_str(), static_cast<long long>(report.memory.peak_allocated));
  for (std::size_t i = 0; i < report.epochs.size(); ++i) {
    const auto& s = report.epochs[i];
    std::printf("%s{\"epoch\": %d, \"loss\": %.6f, \"train_seconds\": %.6f, \"test_accuracy\": %.6f, \"threads\": %d}",
                i ? ", " : "", s.epoch, s.train_loss, s.train_seconds, s.test_accuracy, s.threads);
  }
  std::printf("]}\n");
}

int run_train(train::SeedConfig config, bool json, bool summary, const std::string& plot) {
  if (!plot.empty()) check_plot_target(plot);  // before the training it would follow
  std::string note;
  // An XLA device is the plugin's to check (train_seed_model loads it); the others are checked now.
  const bool xla = train::names_xla_device(train::leased_device_spec(config.device));
  const Device device = xla ? kCPU : train::resolve_device(config.device, &note);
  if (!xla) config.device = device.to_string();
  const auto banner = [&](const train::TrainReport& ready) {
    const std::string accumulate =
        config.accumulate > 1 ? " x " + std::to_string(config.accumulate) + " accumulated per step" : "";
    const std::string amp = config.amp == "off" ? "" : ", autocast " + config.amp;
    const std::string dropout = config.dropout > 0 ? ", dropout " + std::to_string(config.dropout).substr(0, 4) : "";
    std::printf("accel train: %s%s, %s(lr=%g), cross-entropy, batch %lld%s%s, %d epoch(s) on %s\n", ready.model.c_str(),
                dropout.c_str(), optimizer_title(config.optimizer), config.lr,
                static_cast<long long>(config.batch_size), accumulate.c_str(), amp.c_str(), config.epochs,
                ready.device_text.c_str());
    if (!note.empty()) std::printf("device: %s\n", note.c_str());
    if (note.empty() && !ready.device_note.empty()) std::printf("device: %s\n", ready.device_note.c_str());
    if (device.is_sim()) {
      const auto [free, total] = memory::caching_allocator(device).mem_get_info();
      std::printf("device: %s is simulated: CPU compute, %s of simulated device memory (%s free)\n",
                  device.to_string().c_str(), mib_text(static_cast<std::int64_t>(total)).c_str(),
                  mib_text(static_cast<std::int64_t>(free)).c_str());
    }
    std::fflush(stdout);
  };
  std::string held_out = "test";
  train::TrainReport report;
  try {
    report = train::train_seed_model(
        config,
        [&](const train::EpochStats& s) {
          const std::string threads =
              s.threads > 0 ? "  threads " + std::to_string(s.threads) + (s.tuned ? " (tuned)" : "") : "";
          std::printf("epoch %d  loss %.4f  train %.3f s  %.0f samples/s  %s accuracy %.4f%s\n", s.epoch, s.train_loss,
                      s.train_seconds, s.samples_per_second, held_out.c_str(), s.test_accuracy, threads.c_str());
          std::fflush(stdout);
        },
        [&](const train::TrainReport& ready) {
          held_out = ready.held_out;
          banner(ready);
          if (!ready.resumed_from.empty()) std::printf("Resuming from %s\n", ready.resumed_from.c_str());
        });
  } catch (const train::TrainingInterrupted& e) {
    std::printf("interrupted: %s\nresume: accel train --checkpoint-dir %s --resume (with the same flags)\n", e.what(),
                config.checkpoint_dir.c_str());
    std::fflush(stdout);
    return train::TrainingInterrupted::kExitCode;
  }
  if (report.final_test_accuracy) std::printf("test accuracy %.4f\n", *report.final_test_accuracy);
  if (!plot.empty()) {
    plot_curves(plot, report.history, "accel train: " + report.model, held_out);
    std::printf("plot: %s\n", plot.c_str());
  }
  std::printf("step: %s\n", report.step_mode.c_str());
  if (!report.data_mode.empty()) std::printf("data: %s\n", report.data_mode.c_str());
  if (xla) {
    std::printf("memory on %s: held by the PJRT plugin (accel's allocators do not see it)\n",
                report.device_text.c_str());
  } else if (report.memory.peak_reserved) {
    std::printf("memory on %s: peak allocated %s, peak reserved %s\n", device.describe().c_str(),
                mib_text(report.memory.peak_allocated).c_str(), mib_text(*report.memory.peak_reserved).c_str());
  } else {
    std::printf("memory on %s: peak allocated %s (host tensors)\n", device.describe().c_str(),
                mib_text(report.memory.peak_allocated).c_str());
  }
  if (summary) {
    std::fputs(report.memory.summary.empty()
                   ? "--memory-summary: the CPU has no caching allocator; run on cuda or sim\n"
                   : report.memory.summary.c_str(),
               stdout);
  }
  if (!config.save_path.empty()) std::printf("weights: %s (safetensors)\n", config.save_path.c_str());
  if (json) print_json(report, config);
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app, int& exit_code) {
  auto config = std::make_shared<train::SeedConfig>();
  auto json = std::make_shared<bool>(false);
  auto summary = std::make_shared<bool>(false);
  auto plot = std::make_shared<std::string>();
  CLI::App* cmd =
      app.add_subcommand("train", "Train the seed's 784-256-10 MLP (or --layers) on Fashion-MNIST with Keras's fit");
  cmd->add_option("--epochs", config->epochs, "Passes over the 60,000 training images")->capture_default_str();
  cmd->add_option("--batch-size", config->batch_size, "Samples per step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--accumulate", config->accumulate,
                  "Micro-batches per optimizer step (gradient accumulation: a step over N x batch-size "
                  "samples in the memory of one batch)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--amp", config->amp,
                  "Mixed precision: off, bf16 or fp16 (GEMMs in the low type, softmax and the loss in float32, "
                  "float32 parameters; fp16 adds loss scaling)")
      ->capture_default_str()
      ->check(CLI::IsMember({"off", "bf16", "fp16"}));
  cmd->add_flag("--eager{false}", config->capture,
                "Run every step through the ops layer (default: record the second step and replay it)");
  cmd->add_option("--lr", config->lr, "Learning rate")->capture_default_str();
  cmd->add_option("--hidden", config->hidden, "Hidden units")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--layers", config->layers,
                  "Every layer's width, input first: 784,512,128,10 (replaces --hidden; ReLU between layers)")
      ->delimiter(',');
  cmd->add_option("--dropout", config->dropout, "Dropout after each hidden ReLU (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--optimizer", config->optimizer, "adam, adamw or sgd")
      ->capture_default_str()
      ->check(CLI::IsMember({"adam", "adamw", "sgd"}));
  cmd->add_option("--momentum", config->momentum, "SGD momentum")->capture_default_str();
  cmd->add_option("--weight-decay", config->weight_decay, "Weight decay (default: adamw 0.01, others 0)");
  cmd->add_option("--validation-split", config->validation_split,
                  "Hold out this last fraction of the training images, report its accuracy each epoch and the test "
                  "set's at the end")
      ->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--checkpoint-dir", config->checkpoint_dir,
                  "Write a checkpoint here every epoch and at SIGTERM (then exit 75); see --resume");
  cmd->add_flag("--resume", config->resume, "Carry on from --checkpoint-dir's checkpoint");
  cmd->add_option("--verbose", config->verbose, "Keras's progress: 0 (accel's epoch lines), 1 (the bar), 2 (a line)")
      ->capture_default_str()
      ->check(CLI::Range(0, 2));
  cmd->add_option("--device", config->device,
                  "auto, cpu, cuda, cuda:N, sim[:N] (a simulated device), xla or tpu (through a PJRT plugin)")
      ->capture_default_str();
  cmd->add_option("--pjrt-plugin", config->pjrt_plugin,
                  "XLA devices: the PJRT plugin, a path or cpu, tpu, cuda (default: ACCEL_PJRT_PLUGIN, else libtpu, "
                  "else PyPI's xla-cpu-pjrt)");
  cmd->add_option("--replicas", config->replicas,
                  "XLA devices: train data-parallel on this many of the plugin's devices, each taking an equal share "
                  "of --batch-size (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", config->seed, "Seed for initial weights and shuffling")->capture_default_str();
  cmd->add_option("--threads", config->threads,
                  "CPU threads (0 = tuned while training, up to the CPUs this process may use)")
      ->capture_default_str();
  cmd->add_option("--data", config->data_dir,
                  std::string("Training data: a folder of IDX files (default ") + data::kFashionMnistDefaultDir +
                      "), an .npz with x_train, y_train, x_test, y_test (Keras's layout), or a .csv (label column "
                      "'label' or the first, pixels or floats) with --test-data");
  cmd->add_option("--test-data", config->test_data, "The test set's .csv, with a .csv --data");
  cmd->add_option("--memory-fraction", config->memory_fraction,
                  "Cap the device's reserved memory at this fraction of its capacity (cuda, sim)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--device-data", config->device_data,
                  "cuda, sim: resident (the data set kept on the device, each batch gathered there), staged (each "
                  "batch copied from pinned host memory on a copy stream) or auto (resident when the set takes at "
                  "most a quarter of the free memory)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "resident", "staged"}));
  cmd->add_flag("--memory-summary", *summary, "Print the device's memory summary table at the end");
  cmd->add_flag("--json", *json, "Also print the results as one JSON line");
  cmd->add_option("--save", config->save_path,
                  "Write the trained weights to this file as safetensors (PyTorch: safetensors.torch.load_file, "
                  "then load_state_dict of nn.Sequential(Linear(784, H), ReLU(), Linear(H, 10)))");
  cmd->add_option("--plot", *plot,
                  "Draw each epoch's loss and accuracy, training and held-out, into this .png or .svg (gnuplot)");
  cmd->callback([config, json, summary, plot, &exit_code] { exit_code = run_train(*config, *json, *summary, *plot); });
}

}  // namespace accel::cli
