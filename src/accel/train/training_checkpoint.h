// What fit needs to carry on as if it had never stopped, in one safetensors file written
// atomically (tensor/safetensors.h: a SIGKILL mid-write leaves the previous one whole):
// "model.<name>", "optimizer.<name>" and "scaler.<name>" state dicts, the data order of the
// epoch in progress ("loader.order"), the epoch's running loss and correct count, the history
// ("history.<log>", float64 [epochs]); and in the metadata the epoch, the batches of it done,
// the shuffling and global generators' states with the latter's dropout counters, and the batch
// size, accumulation and sample count the order was made for. Callbacks' own state is not kept
// (EarlyStopping and ModelCheckpoint rebuild theirs from the history: Callback::on_resume).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "accel/tensor/tensor.h"
#include "accel/train/model.h"

namespace accel::train {

struct TrainingCheckpoint {
  std::map<std::string, Tensor> model, optimizer, scaler;
  int epoch = 0;                // the epoch in progress, from 0
  std::int64_t next_batch = 0;  // its batches already done
  std::int64_t samples_seen = 0;
  std::vector<std::int64_t> order;  // the epoch's data order
  std::string shuffle_state, global_rng_state;
  std::map<std::string, std::int64_t> dropout_counters;            // the global generator's, by device
  std::int64_t batch_size = 0, accumulate = 1, train_samples = 0;  // what next_batch counts in
  Tensor loss_sum, correct;                                        // the epoch so far: float64 and int64 scalars
  History history;
};

// DIR/checkpoint.safetensors
std::string training_checkpoint_path(const std::string& dir);
void save_training_checkpoint(const std::string& dir, const TrainingCheckpoint& checkpoint);
// Nothing when DIR has no checkpoint; DataError naming the file when it is damaged or not one.
std::optional<TrainingCheckpoint> load_training_checkpoint(const std::string& dir);

}  // namespace accel::train
