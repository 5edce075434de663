#include "accel/tensor/generator.h"

#include <bit>
#include <cmath>
#include <numbers>
#include <sstream>

#include "accel/core/error.h"

namespace accel {

// "mt19937_64 <seed> <spare flag> <spare's bits> <engine words...>": the engine's own text form,
// so the standard library's writer and reader agree on it.
std::string Generator::state() const {
  std::ostringstream out;
  out << "mt19937_64 " << seed_ << ' ' << (has_spare_ ? 1 : 0) << ' ' << std::bit_cast<std::uint64_t>(spare_) << ' '
      << engine_;
  return out.str();
}

void Generator::set_state(const std::string& text) {
  std::istringstream in(text);
  std::string kind;
  std::uint64_t seed = 0, spare_bits = 0;
  int has_spare = 0;
  std::mt19937_64 engine;
  in >> kind >> seed >> has_spare >> spare_bits >> engine;
  if (!in || kind != "mt19937_64" || (has_spare != 0 && has_spare != 1)) {
    throw ValueError("Generator::set_state: not a generator state (expected the text of Generator::state())");
  }
  engine_ = engine;
  seed_ = seed;
  has_spare_ = has_spare == 1;
  spare_ = std::bit_cast<double>(spare_bits);
  device_state_.reset();
}

std::uint64_t Generator::below(std::uint64_t n) {
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  std::uint64_t x;
  do {
    x = engine_();
  } while (x >= limit);
  return x % n;
}

float Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return static_cast<float>(spare_);
  }
  double u1;
  do {
    u1 = static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  } while (u1 <= 0.0);
  const double u2 = static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * std::numbers::pi * u2;
  spare_ = radius * std::sin(angle);
  has_spare_ = true;
  return static_cast<float>(radius * std::cos(angle));
}

Generator& default_generator() {
  static Generator generator(0);
  return generator;
}

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace accel
