// ThreadTuner: picks how many threads a loop of equal steps (a training epoch) uses, by
// measuring. On a quiet machine every core helps; beside a busy neighbour (another runtime, a
// compiler) a thread that shares its core with it is descheduled for whole time slices, every
// parallel region waits for it, and two threads run an epoch 7-30x slower than one. No static
// rule knows which case holds, and it changes while training, so the tuner times steps at each
// candidate count, keeps the fastest, and probes again every few seconds. It compares mean step
// times over a probe long enough to span scheduler time slices (milliseconds): most steps
// with a descheduled thread are as fast as ever, and a few take a whole slice, so a median
// would pick the slow count.
//
//   ThreadTuner tuner({.max_threads = hw::usable_cpus()});
//   for (step ...) { set_num_threads(tuner.threads()); auto t0 = now(); step(); tuner.record(now() - t0); }
#pragma once

#include <string>
#include <vector>

namespace accel::train {

struct ThreadTunerOptions {
  int max_threads = 1;
  int probe_steps = 16;          // steps timed at each candidate, at least ...
  double probe_min_s = 0.03;     // ... and at least this long (their mean counts)
  int settle_steps = 2;          // steps not timed after a change (threads wake, caches refill)
  double reprobe_after_s = 4.0;  // seconds of running on the choice before probing again
};

class ThreadTuner {
 public:
  explicit ThreadTuner(ThreadTunerOptions options);
  // The thread count the next step should run with.
  int threads() const { return candidates_[current_]; }
  // The seconds the last step took, run with threads().
  void record(double step_seconds);
  // The candidates, most threads first: max, half of it, 1.
  const std::vector<int>& candidates() const { return candidates_; }
  // The count chosen by the last complete probe (max_threads before the first).
  int chosen() const { return candidates_[chosen_]; }
  int probes_completed() const { return probes_; }

 private:
  void start_probe();

  ThreadTunerOptions options_;
  std::vector<int> candidates_;
  std::size_t current_ = 0, chosen_ = 0;
  bool probing_ = true;
  int skip_ = 0;
  int samples_ = 0;
  double sampled_s_ = 0;
  std::vector<double> means_;
  double running_s_ = 0;
  int probes_ = 0;
};

}  // namespace accel::train
