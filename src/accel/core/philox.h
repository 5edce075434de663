// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the
// generator of PyTorch's and JAX's device RNG): a counter-based generator, so element i of a
// random tensor is a pure function of (seed, counter + i / 4). Kernels on any device draw the
// same numbers without state shared between threads, and a recorded kernel replays with a
// counter kept on the device (dropout in a captured step).
#pragma once

#include <array>
#include <cstdint>

namespace accel {

// The four 32-bit outputs for `counter` under `seed` (Random123's philox4x32_10 with
// ctr = {counter lo, counter hi, 0, 0} and key = {seed lo, seed hi}).
constexpr std::array<std::uint32_t, 4> philox4x32(std::uint64_t seed, std::uint64_t counter) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  std::uint32_t c0 = static_cast<std::uint32_t>(counter), c1 = static_cast<std::uint32_t>(counter >> 32), c2 = 0,
                c3 = 0;
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const std::uint64_t p0 = static_cast<std::uint64_t>(kM0) * c0;
    const std::uint64_t p1 = static_cast<std::uint64_t>(kM1) * c2;
    const auto hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const auto hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  return {c0, c1, c2, c3};
}

// Uniform in [0, 1) from the top 24 bits of a draw: every float32 of that form.
constexpr float philox_uniform(std::uint32_t draw) { return static_cast<float>(draw >> 8) * (1.0f / 16777216.0f); }

}  // namespace accel
