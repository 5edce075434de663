// accel train: the seed's model on Fashion-MNIST.
#include <cstdio>
#include <string>

#include "accel/train/seed_trainer.h"
#include "commands.h"

namespace accel::cli {
namespace {

int run_train(train::SeedConfig config, bool json) {
  std::string note;
  config.device = train::resolve_device(config.device, &note).to_string();
  std::printf("accel train: 784-%lld-10 MLP, Adam(lr=%g), cross-entropy, batch %lld, %d epoch(s) on %s\n",
              static_cast<long long>(config.hidden), config.lr, static_cast<long long>(config.batch_size),
              config.epochs, config.device.c_str());
  if (!note.empty()) std::printf("device: %s\n", note.c_str());
  std::fflush(stdout);
  const auto report = train::train_seed_model(config, [&](const train::EpochStats& s) {
    std::printf("epoch %d  loss %.4f  train %.3f s  %.0f samples/s  test accuracy %.4f\n", s.epoch, s.train_loss,
                s.train_seconds, s.samples_per_second, s.test_accuracy);
    std::fflush(stdout);
  });
  if (json) {
    std::printf("{\"device\": \"%s\", \"batch_size\": %lld, \"epochs\": [", report.device.to_string().c_str(),
                static_cast<long long>(config.batch_size));
    for (std::size_t i = 0; i < report.epochs.size(); ++i) {
      const auto& s = report.epochs[i];
      std::printf("%s{\"epoch\": %d, \"loss\": %.6f, \"train_seconds\": %.6f, \"test_accuracy\": %.6f}", i ? ", " : "",
                  s.epoch, s.train_loss, s.train_seconds, s.test_accuracy);
    }
    std::printf("]}\n");
  }
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app, int& exit_code) {
  auto config = std::make_shared<train::SeedConfig>();
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("train", "Train the seed's 784-256-10 MLP on Fashion-MNIST");
  cmd->add_option("--epochs", config->epochs, "Passes over the 60,000 training images")->capture_default_str();
  cmd->add_option("--batch-size", config->batch_size, "Samples per step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lr", config->lr, "Adam learning rate")->capture_default_str();
  cmd->add_option("--hidden", config->hidden, "Hidden units")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--device", config->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--seed", config->seed, "Seed for initial weights and shuffling")->capture_default_str();
  cmd->add_option("--threads", config->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option(
      "--data", config->data_dir,
      std::string("Folder with the Fashion-MNIST IDX files (default ") + data::kFashionMnistDefaultDir + ")");
  cmd->add_flag("--json", *json, "Also print the results as one JSON line");
  cmd->callback([config, json, &exit_code] { exit_code = run_train(*config, *json); });
}

}  // namespace accel::cli
