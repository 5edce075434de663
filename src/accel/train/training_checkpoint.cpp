#include "accel/train/training_checkpoint.h"

#include <filesystem>
#include <sstream>

#include "accel/tensor/safetensors.h"

namespace accel::train {
namespace {

constexpr const char* kKind = "accel training checkpoint v1";

void put(std::map<std::string, Tensor>& out, const std::string& prefix, const std::map<std::string, Tensor>& part) {
  for (const auto& [name, tensor] : part) out[prefix + name] = tensor;
}

std::map<std::string, Tensor> take(const std::map<std::string, Tensor>& all, const std::string& prefix) {
  std::map<std::string, Tensor> part;
  for (auto it = all.lower_bound(prefix); it != all.end() && it->first.rfind(prefix, 0) == 0; ++it) {
    part[it->first.substr(prefix.size())] = it->second;
  }
  return part;
}

}  // namespace

std::string training_checkpoint_path(const std::string& dir) {
  return (std::filesystem::path(dir) / "checkpoint.safetensors").string();
}

void save_training_checkpoint(const std::string& dir, const TrainingCheckpoint& c) {
  std::map<std::string, Tensor> tensors;
  put(tensors, "model.", c.model);
  put(tensors, "optimizer.", c.optimizer);
  put(tensors, "scaler.", c.scaler);
  tensors["loader.order"] = from_vector(c.order, {static_cast<std::int64_t>(c.order.size())});
  tensors["progress.loss_sum"] = c.loss_sum;
  tensors["progress.correct"] = c.correct;
  std::vector<std::int64_t> epochs(c.history.epoch.begin(), c.history.epoch.end());
  tensors["history_epoch"] = from_vector(epochs, {static_cast<std::int64_t>(epochs.size())});
  for (const auto& [name, values] : c.history.history) {
    tensors["history." + name] = from_vector(values, {static_cast<std::int64_t>(values.size())});
  }
  std::string counters;
  for (const auto& [device, value] : c.dropout_counters) {
    counters += (counters.empty() ? "" : ",") + device + "=" + std::to_string(value);
  }
  save_safetensors(training_checkpoint_path(dir), tensors,
                   {{"accel.checkpoint", kKind},
                    {"dropout_counters", counters},
                    {"batch_size", std::to_string(c.batch_size)},
                    {"accumulate", std::to_string(c.accumulate)},
                    {"train_samples", std::to_string(c.train_samples)},
                    {"epoch", std::to_string(c.epoch)},
                    {"next_batch", std::to_string(c.next_batch)},
                    {"samples_seen", std::to_string(c.samples_seen)},
                    {"shuffle_state", c.shuffle_state},
                    {"global_rng_state", c.global_rng_state}});
}

std::optional<TrainingCheckpoint> load_training_checkpoint(const std::string& dir) {
  const std::string path = training_checkpoint_path(dir);
  if (!std::filesystem::exists(path)) return std::nullopt;
  const SafetensorsFile file = load_safetensors(path);
  const auto meta = [&](const char* key) -> const std::string& {
    const auto it = file.metadata.find(key);
    if (it == file.metadata.end()) {
      throw DataError(path + ": not an accel training checkpoint (its metadata has no '" + key +
                      "'); remove it or point checkpoint_dir elsewhere");
    }
    return it->second;
  };
  if (meta("accel.checkpoint") != kKind) {
    throw DataError(path + ": a checkpoint of another kind ('" + meta("accel.checkpoint") + "', expected '" + kKind +
                    "')");
  }
  const auto tensor = [&](const std::string& name, DType dtype) {
    const auto it = file.tensors.find(name);
    if (it == file.tensors.end() || it->second.dtype() != dtype) {
      throw DataError(path + ": the tensor '" + name + "' is missing or not " + std::string(dtype_name(dtype)));
    }
    return it->second;
  };
  const auto number = [&](const char* key) {
    try {
      return std::stoll(meta(key));
    } catch (const std::logic_error&) {
      throw DataError(path + ": the metadata '" + key + "' is not a number");
    }
  };
  TrainingCheckpoint c;
  c.model = take(file.tensors, "model.");
  c.optimizer = take(file.tensors, "optimizer.");
  c.scaler = take(file.tensors, "scaler.");
  c.epoch = static_cast<int>(number("epoch"));
  c.next_batch = number("next_batch");
  c.samples_seen = number("samples_seen");
  c.shuffle_state = meta("shuffle_state");
  c.batch_size = number("batch_size");
  c.accumulate = number("accumulate");
  c.train_samples = number("train_samples");
  std::stringstream counters(meta("dropout_counters"));
  for (std::string item; std::getline(counters, item, ',');) {
    const auto equals = item.find('=');
    try {
      if (equals == std::string::npos) throw std::invalid_argument(item);
      c.dropout_counters[item.substr(0, equals)] = std::stoll(item.substr(equals + 1));
    } catch (const std::logic_error&) {
      throw DataError(path + ": the metadata 'dropout_counters' is damaged at '" + item + "'");
    }
  }
  c.global_rng_state = meta("global_rng_state");
  c.order = tensor("loader.order", DType::Int64).to_vector<std::int64_t>();
  c.loss_sum = tensor("progress.loss_sum", DType::Float64);
  c.correct = tensor("progress.correct", DType::Int64);
  for (const std::int64_t e : tensor("history_epoch", DType::Int64).to_vector<std::int64_t>()) {
    c.history.epoch.push_back(static_cast<int>(e));
  }
  for (const auto& [name, values] : take(file.tensors, "history.")) {
    if (values.dtype() != DType::Float64 || values.numel() != static_cast<std::int64_t>(c.history.epoch.size())) {
      throw DataError(path + ": history." + name + " does not hold one float64 per epoch");
    }
    c.history.history[name] = values.to_vector<double>();
  }
  return c;
}

}  // namespace accel::train
