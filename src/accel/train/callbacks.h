// Callbacks for train::Model::fit, Keras's set with Keras's names and defaults:
//
//   model.fit(x, y, {.epochs = 50, .validation_split = 0.1, .callbacks = {
//       std::make_shared<train::EarlyStopping>(train::EarlyStoppingOptions{.patience = 3}),
//       std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{.filepath = "best.safetensors",
//                                                                             .save_best_only = true}),
//       std::make_shared<train::CSVLogger>("log.csv")}});
//
// Epochs are counted from 0 in the calls, as Keras does. A callback that monitors a log fit will
// not produce (val_loss without validation data) is an error before the first step, not a
// warning after the last.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>

#include "accel/train/model.h"

namespace accel::train {

class Callback {
 public:
  virtual ~Callback() = default;
  // `log_names`: the names every epoch's logs will hold (Model::log_names).
  virtual void on_train_begin(Model& model, const std::vector<std::string>& log_names) {
    (void)model;
    (void)log_names;
  }
  // After on_train_begin when fit resumed from a checkpoint: the epochs already done, so a
  // callback can take up where it was (a checkpoint does not keep callbacks' own state).
  virtual void on_resume(Model& model, const History& history) {
    (void)model;
    (void)history;
  }
  virtual void on_epoch_begin(Model& model, int epoch) {
    (void)model;
    (void)epoch;
  }
  // Called after each step only for callbacks that ask (a host read of the loss per step).
  virtual bool wants_batch_loss() const { return false; }
  virtual void on_batch_end(Model& model, std::int64_t batch, double loss) {
    (void)model;
    (void)batch;
    (void)loss;
  }
  virtual void on_epoch_end(Model& model, int epoch, const Logs& logs) {
    (void)model;
    (void)epoch;
    (void)logs;
  }
  virtual void on_train_end(Model& model) { (void)model; }
};

// "min" for losses, "max" for accuracies; "auto" picks by the monitored name.
struct Monitor {
  std::string name = "val_loss";
  std::string mode = "auto";
  double min_delta = 0.0;
  // Throws ValueError when fit will not log `name` or the mode is unknown.
  void check(const std::vector<std::string>& log_names, const char* who);
  // Whether `value` beats `best` by more than min_delta.
  bool improved(double value, double best) const;
  double worst() const;
  bool maximize = false;  // decided by check() from mode and name
};

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  double min_delta = 0.0;
  int patience = 0;
  std::string mode = "auto";
  bool restore_best_weights = false;
};

// Stops fit when the monitored value has not improved for `patience` epochs. After a resume it
// takes its best value and patience count from the history; the best weights of epochs before
// the resume are not kept, so restore_best_weights restores only a best found after it.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  void on_train_begin(Model& model, const std::vector<std::string>& log_names) override;
  void on_resume(Model& model, const History& history) override;
  void on_epoch_end(Model& model, int epoch, const Logs& logs) override;
  void on_train_end(Model& model) override;
  int stopped_epoch() const { return stopped_epoch_; }  // -1 when it never stopped fit
  int best_epoch() const { return best_epoch_; }

 private:
  EarlyStoppingOptions options_;
  Monitor monitor_;
  double best_ = 0.0;
  int best_epoch_ = -1, wait_ = 0, stopped_epoch_ = -1;
  std::map<std::string, Tensor> best_weights_;
};

struct ModelCheckpointOptions {
  // "{epoch}" or "{epoch:02d}" in the path is replaced by the 1-based epoch, as Keras formats it.
  std::string filepath{};
  std::string monitor = "val_loss";
  bool save_best_only = false;
  std::string mode = "auto";
};

// Writes the weights (Model::save: safetensors, atomically) after each epoch, or only when the
// monitored value improved.
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(ModelCheckpointOptions options);
  void on_train_begin(Model& model, const std::vector<std::string>& log_names) override;
  void on_resume(Model& model, const History& history) override;  // the best so far, from it
  void on_epoch_end(Model& model, int epoch, const Logs& logs) override;
  // The path for a 1-based epoch.
  std::string path_for(int epoch) const;

 private:
  ModelCheckpointOptions options_;
  Monitor monitor_;
  double best_ = 0.0;
};

// One CSV row per epoch: "epoch" then every log in sorted order, as Keras writes it.
class CSVLogger : public Callback {
 public:
  explicit CSVLogger(std::string filename, char separator = ',', bool append = false);
  void on_train_begin(Model& model, const std::vector<std::string>& log_names) override;
  void on_epoch_end(Model& model, int epoch, const Logs& logs) override;

 private:
  std::string filename_;
  char separator_;
  bool append_;
};

// Sets the learning rate at the start of each epoch to schedule(epoch, current lr); the
// optim schedulers fit: [s = optim::StepLR(...)](int e, double) { return s.lr_at(e); }.
class LearningRateScheduler : public Callback {
 public:
  explicit LearningRateScheduler(std::function<double(int epoch, double lr)> schedule);
  void on_epoch_begin(Model& model, int epoch) override;

 private:
  std::function<double(int, double)> schedule_;
};

// Stops fit at the first step whose loss is NaN or infinite.
class TerminateOnNaN : public Callback {
 public:
  bool wants_batch_loss() const override { return true; }
  void on_batch_end(Model& model, std::int64_t batch, double loss) override;
  std::int64_t stopped_at_batch() const { return stopped_at_; }

 private:
  std::int64_t stopped_at_ = -1;
};

}  // namespace accel::train
