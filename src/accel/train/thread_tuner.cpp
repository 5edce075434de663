#include "accel/train/thread_tuner.h"

#include <algorithm>

#include "accel/core/error.h"

namespace accel::train {

ThreadTuner::ThreadTuner(ThreadTunerOptions options) : options_(options) {
  if (options.max_threads < 1 || options.probe_steps < 1 || options.settle_steps < 0 || options.reprobe_after_s <= 0 ||
      options.probe_min_s < 0)
    throw ValueError(
        "ThreadTuner: max_threads and probe_steps must be >= 1, settle_steps and probe_min_s >= 0, reprobe_after_s > "
        "0");
  for (int c : {options.max_threads, (options.max_threads + 1) / 2, 1}) {
    if (std::find(candidates_.begin(), candidates_.end(), c) == candidates_.end()) candidates_.push_back(c);
  }
  start_probe();
}

void ThreadTuner::start_probe() {
  probing_ = candidates_.size() > 1;
  means_.assign(candidates_.size(), 0.0);
  current_ = 0;
  skip_ = options_.settle_steps;
  samples_ = 0;
  sampled_s_ = 0;
}

void ThreadTuner::record(double step_seconds) {
  if (!probing_) {
    running_s_ += step_seconds;
    if (running_s_ >= options_.reprobe_after_s) {
      running_s_ = 0;
      start_probe();
    }
    return;
  }
  if (skip_ > 0) {
    --skip_;
    return;
  }
  ++samples_;
  sampled_s_ += step_seconds;
  if (samples_ < options_.probe_steps || sampled_s_ < options_.probe_min_s) return;
  means_[current_] = sampled_s_ / samples_;
  samples_ = 0;
  sampled_s_ = 0;
  skip_ = options_.settle_steps;
  if (++current_ < candidates_.size()) return;
  chosen_ = static_cast<std::size_t>(std::min_element(means_.begin(), means_.end()) - means_.begin());
  current_ = chosen_;
  probing_ = false;
  ++probes_;
}

}  // namespace accel::train
