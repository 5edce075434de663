#include "accel/train/callbacks.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>

namespace accel::train {

void Monitor::check(const std::vector<std::string>& log_names, const char* who) {
  if (std::find(log_names.begin(), log_names.end(), name) == log_names.end()) {
    std::string known;
    for (const auto& n : log_names) known += (known.empty() ? "" : ", ") + n;
    throw ValueError(std::string(who) + " monitors '" + name + "', which fit will not log (it logs " + known + ")" +
                     (name.rfind("val_", 0) == 0 ? ": pass validation_split or validation_data" : ""));
  }
  if (mode == "auto") {
    maximize = name.find("acc") != std::string::npos;
  } else if (mode == "min" || mode == "max") {
    maximize = mode == "max";
  } else {
    throw ValueError(std::string(who) + ": mode must be auto, min or max, got '" + mode + "'");
  }
}

bool Monitor::improved(double value, double best) const {
  if (std::isnan(value)) return false;
  return maximize ? value - min_delta > best : value + min_delta < best;
}

double Monitor::worst() const {
  return maximize ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  if (options_.patience < 0) throw ValueError("EarlyStopping: patience must be >= 0");
  monitor_ = {.name = options_.monitor, .mode = options_.mode, .min_delta = std::abs(options_.min_delta)};
}

void EarlyStopping::on_train_begin(Model& model, const std::vector<std::string>& log_names) {
  (void)model;
  monitor_.check(log_names, "EarlyStopping");
  best_ = monitor_.worst();
  best_epoch_ = -1;
  wait_ = 0;
  stopped_epoch_ = -1;
  best_weights_.clear();
}

void EarlyStopping::on_resume(Model& model, const History& history) {
  (void)model;
  const auto it = history.history.find(options_.monitor);
  if (it == history.history.end()) return;
  for (std::size_t e = 0; e < it->second.size(); ++e) {
    if (monitor_.improved(it->second[e], best_) || best_epoch_ < 0) {
      best_ = it->second[e];
      best_epoch_ = history.epoch.at(e);
      wait_ = 0;
    } else {
      ++wait_;
    }
  }
}

void EarlyStopping::on_epoch_end(Model& model, int epoch, const Logs& logs) {
  const double value = logs.at(options_.monitor);
  if (monitor_.improved(value, best_) || best_epoch_ < 0) {
    best_ = value;
    best_epoch_ = epoch;
    wait_ = 0;
    if (options_.restore_best_weights) best_weights_ = model.module().state_dict();
    return;
  }
  if (++wait_ > options_.patience) {
    stopped_epoch_ = epoch;
    model.stop_training = true;
  }
}

void EarlyStopping::on_train_end(Model& model) {
  if (stopped_epoch_ >= 0 && options_.restore_best_weights && !best_weights_.empty()) {
    model.module().load_state_dict(best_weights_);
  }
}

ModelCheckpoint::ModelCheckpoint(ModelCheckpointOptions options) : options_(std::move(options)) {
  if (options_.filepath.empty()) throw ValueError("ModelCheckpoint: filepath is empty");
  monitor_ = {.name = options_.monitor, .mode = options_.mode};
}

void ModelCheckpoint::on_train_begin(Model& model, const std::vector<std::string>& log_names) {
  (void)model;
  if (options_.save_best_only) monitor_.check(log_names, "ModelCheckpoint");
  best_ = monitor_.worst();
}

void ModelCheckpoint::on_resume(Model& model, const History& history) {
  (void)model;
  const auto it = history.history.find(options_.monitor);
  if (!options_.save_best_only || it == history.history.end()) return;
  for (const double value : it->second) {
    if (monitor_.improved(value, best_)) best_ = value;
  }
}

std::string ModelCheckpoint::path_for(int epoch) const {
  static const std::regex placeholder(R"(\{epoch(?::0?(\d+)d)?\})");
  std::string out;
  auto rest = options_.filepath.cbegin();
  for (std::sregex_iterator it(options_.filepath.begin(), options_.filepath.end(), placeholder), end; it != end; ++it) {
    out.append(rest, (*it)[0].first);
    std::string number = std::to_string(epoch);
    if ((*it)[1].matched) {
      const auto width = static_cast<std::size_t>(std::stoi((*it)[1].str()));
      if (number.size() < width) number.insert(0, width - number.size(), '0');
    }
    out += number;
    rest = (*it)[0].second;
  }
  out.append(rest, options_.filepath.cend());
  return out;
}

void ModelCheckpoint::on_epoch_end(Model& model, int epoch, const Logs& logs) {
  if (options_.save_best_only) {
    const double value = logs.at(options_.monitor);
    if (!monitor_.improved(value, best_)) return;
    best_ = value;
  }
  model.save(path_for(epoch + 1));
}

CSVLogger::CSVLogger(std::string filename, char separator, bool append)
    : filename_(std::move(filename)), separator_(separator), append_(append) {}

void CSVLogger::on_train_begin(Model& model, const std::vector<std::string>& log_names) {
  (void)model;
  // Opened now, so a bad path fails before training rather than after the first epoch.
  const bool had_rows = append_ && std::ifstream(filename_).peek() != std::ifstream::traits_type::eof();
  std::ofstream out(filename_, append_ ? std::ios::app : std::ios::trunc);
  if (!out) throw Error("CSVLogger: cannot write " + filename_ + ": " + std::strerror(errno));
  if (had_rows) return;
  std::vector<std::string> names = log_names;
  std::sort(names.begin(), names.end());
  out << "epoch";
  for (const auto& name : names) out << separator_ << name;
  out << '\n';
}

void CSVLogger::on_epoch_end(Model& model, int epoch, const Logs& logs) {
  (void)model;
  std::ofstream out(filename_, std::ios::app);
  out << epoch;
  char value[32];
  for (const auto& [name, v] : logs) {  // a std::map: sorted, as the header
    std::snprintf(value, sizeof value, "%.17g", v);
    out << separator_ << value;
  }
  out << '\n';
  out.flush();
  if (!out) throw Error("CSVLogger: cannot write " + filename_ + ": " + std::strerror(errno));
}

LearningRateScheduler::LearningRateScheduler(std::function<double(int, double)> schedule)
    : schedule_(std::move(schedule)) {
  if (!schedule_) throw ValueError("LearningRateScheduler: the schedule is empty");
}

void LearningRateScheduler::on_epoch_begin(Model& model, int epoch) {
  const double lr = schedule_(epoch, model.learning_rate());
  if (!std::isfinite(lr) || lr < 0) {
    throw ValueError("LearningRateScheduler: the schedule gave " + std::to_string(lr) + " for epoch " +
                     std::to_string(epoch) + " (a learning rate must be finite and >= 0)");
  }
  if (lr != model.learning_rate()) model.set_learning_rate(lr);
}

void TerminateOnNaN::on_batch_end(Model& model, std::int64_t batch, double loss) {
  if (std::isfinite(loss)) return;
  stopped_at_ = batch;
  model.stop_training = true;
}

}  // namespace accel::train
