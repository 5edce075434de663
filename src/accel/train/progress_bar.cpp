#include "accel/train/progress_bar.h"

#include <cmath>

namespace accel::train {

ProgressBar::ProgressBar(std::FILE* out, int verbose, bool terminal)
    : out_(out), verbose_(verbose), terminal_(terminal) {}

std::string ProgressBar::format_seconds(double seconds) {
  return std::to_string(static_cast<long long>(std::llround(seconds))) + "s";
}

std::string ProgressBar::format_per_step(double seconds) {
  char text[32];
  if (seconds >= 1) {
    std::snprintf(text, sizeof text, "%.0fs/step", seconds);
  } else if (seconds >= 1e-3) {
    std::snprintf(text, sizeof text, "%.0fms/step", seconds * 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.0fus/step", seconds * 1e6);
  }
  return text;
}

std::string ProgressBar::format_eta(double seconds) {
  const auto s = static_cast<long long>(seconds);
  char text[48];
  if (s > 3600) {
    std::snprintf(text, sizeof text, "ETA: %lld:%02lld:%02lld", s / 3600, s % 3600 / 60, s % 60);
  } else if (s > 60) {
    std::snprintf(text, sizeof text, "ETA: %lld:%02lld", s / 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "ETA: %llds", s);
  }
  return text;
}

std::string ProgressBar::format_value(double value) {
  char text[32];
  std::snprintf(text, sizeof text, std::abs(value) > 1e-3 || value == 0 ? " %.4f" : " %.4e", value);
  return text;
}

std::string ProgressBar::bar(std::int64_t step, std::int64_t steps) {
  constexpr std::int64_t kWidth = 30;
  const std::int64_t filled = steps > 0 ? kWidth * step / steps : kWidth;
  std::string text = "[";
  if (filled > 0) {
    text.append(static_cast<std::size_t>(filled - 1), '=');
    text += step < steps ? '>' : '=';
  }
  text.append(static_cast<std::size_t>(kWidth - filled), '.');
  return text + "]";
}

std::string ProgressBar::counter(std::int64_t step) const {
  const std::string total = std::to_string(steps_);
  std::string done = std::to_string(step);
  if (done.size() < total.size()) done.insert(0, total.size() - done.size(), ' ');
  return done + "/" + total;
}

std::string ProgressBar::values_text(const ProgressValues& values) const {
  std::string text;
  for (const auto& [name, value] : values) text += " - " + name + ":" + format_value(value);
  return text;
}

double ProgressBar::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::epoch_begin(int epoch, int epochs, std::int64_t steps) {
  steps_ = steps;
  start_ = last_draw_ = std::chrono::steady_clock::now();
  drawn_width_ = 0;
  if (verbose_ == 0) return;
  std::fprintf(out_, "Epoch %d/%d\n", epoch + 1, epochs);
  std::fflush(out_);
}

bool ProgressBar::wants_update() const {
  return verbose_ == 1 && terminal_ && std::chrono::steady_clock::now() - last_draw_ >= std::chrono::milliseconds(50);
}

void ProgressBar::update(std::int64_t step, const ProgressValues& values) {
  if (verbose_ != 1 || !terminal_) return;
  last_draw_ = std::chrono::steady_clock::now();
  const double per_step = step > 0 ? elapsed() / static_cast<double>(step) : 0.0;
  std::string line = counter(step) + " " + bar(step, steps_) + " - " +
                     format_eta(per_step * static_cast<double>(steps_ - step)) + values_text(values);
  const std::size_t width = line.size();
  if (width < drawn_width_) line.append(drawn_width_ - width, ' ');  // covers a longer previous line
  drawn_width_ = width;
  std::fprintf(out_, "\r%s", line.c_str());
  std::fflush(out_);
}

void ProgressBar::epoch_end(const ProgressValues& values) {
  if (verbose_ == 0) return;
  const double seconds = elapsed();
  const double per_step = steps_ > 0 ? seconds / static_cast<double>(steps_) : 0.0;
  std::string line;
  if (verbose_ == 1) {
    line = counter(steps_) + " " + bar(steps_, steps_) + " - " + format_seconds(seconds) + " " +
           format_per_step(per_step) + values_text(values);
  } else {
    line = counter(steps_) + " - " + format_seconds(seconds) + values_text(values) + " - " + format_per_step(per_step);
  }
  const std::size_t width = line.size();
  if (terminal_ && width < drawn_width_) line.append(drawn_width_ - width, ' ');
  std::fprintf(out_, "%s%s\n", terminal_ && verbose_ == 1 ? "\r" : "", line.c_str());
  std::fflush(out_);
}

}  // namespace accel::train
