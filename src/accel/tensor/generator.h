// Generator: a seedable random source for randn/rand/randint, parameter init, dropout and
// shuffling. The same seed gives the same numbers on every machine (no std:: distributions,
// whose algorithms differ between standard libraries).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>

namespace accel {

// What a generator keeps on devices: Philox counters for dropout drawn there (ops/random.cpp).
struct DeviceRandomState;

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : engine_(seed), seed_(seed) {}
  // Also starts the device counters over (a captured step that draws on the device must be
  // recaptured after it: it holds the old counters).
  void manual_seed(std::uint64_t seed) {
    engine_.seed(seed);
    seed_ = seed;
    device_state_.reset();
  }
  std::uint64_t seed() const { return seed_; }  // Philox's key for numbers drawn on devices
  std::shared_ptr<DeviceRandomState>& device_state() { return device_state_; }

  std::uint64_t next_u64() { return engine_(); }
  // Uniform in [0, 1) with 24 random bits (every float32 value of that form).
  float uniform() { return static_cast<float>(engine_() >> 40) * (1.0f / 16777216.0f); }
  // Uniform integer in [0, n), without modulo bias.
  std::uint64_t below(std::uint64_t n);
  // Standard normal (Box-Muller on doubles).
  float normal();

  // The host engine's whole state as text (seed, engine, the spare normal), for checkpoints:
  // set_state(state()) continues the same sequence. Device counters are not included.
  std::string state() const;
  // Throws ValueError when `text` is not a state() of this kind.
  void set_state(const std::string& text);

 private:
  std::mt19937_64 engine_;
  std::uint64_t seed_ = 0;
  std::shared_ptr<DeviceRandomState> device_state_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// The process-wide generator used when none is passed; seeded with 0 until manual_seed.
Generator& default_generator();
void manual_seed(std::uint64_t seed);

}  // namespace accel
