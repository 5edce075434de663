// Keras's progress line for fit, as Keras 2 prints it:
//
//   Epoch 1/5
//   1875/1875 [==============================] - 2s 1ms/step - loss: 0.4990 - accuracy: 0.8251
//
// verbose 1 on a terminal redraws the bar in place while the epoch runs (at most every 50 ms,
// so drawing costs nothing next to the steps); verbose 1 elsewhere (a log file, a pipe) prints
// only each epoch's final line; verbose 2 prints "1875/1875 - 2s - loss: ... - 1ms/step".
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace accel::train {

// Ordered (name, value) pairs: the line shows them in this order.
using ProgressValues = std::vector<std::pair<std::string, double>>;

class ProgressBar {
 public:
  // terminal: whether `out` is one (isatty), passed in so tests can draw either way.
  ProgressBar(std::FILE* out, int verbose, bool terminal);

  void epoch_begin(int epoch, int epochs, std::int64_t steps);
  // Whether update() would draw now: only on a terminal at verbose 1, every 50 ms.
  bool wants_update() const;
  void update(std::int64_t step, const ProgressValues& values);
  void epoch_end(const ProgressValues& values);

  // The pieces, exposed for tests: "2s", "1ms/step", "ETA: 1:05", " 0.4990".
  static std::string format_seconds(double seconds);
  static std::string format_per_step(double seconds);
  static std::string format_eta(double seconds);
  static std::string format_value(double value);
  // "[=====>........]" for `step` of `steps` (30 wide).
  static std::string bar(std::int64_t step, std::int64_t steps);

 private:
  std::string counter(std::int64_t step) const;
  std::string values_text(const ProgressValues& values) const;
  double elapsed() const;

  std::FILE* out_;
  int verbose_;
  bool terminal_;
  std::int64_t steps_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::size_t drawn_width_ = 0;
};

}  // namespace accel::train
