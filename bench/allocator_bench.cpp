// Allocate/free throughput: accel's caching allocator (simulated device: the same core as on
// CUDA, with host memory underneath) against plain malloc/free, side by side in one run.
// Prints nanoseconds per allocate+free pair and the ratio. On a machine with a GPU, add the
// CUDA rows by running with --cuda (cudaMalloc/cudaFree against the caching allocator).
//
//   build/allocator_bench [--rounds N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "accel/memory/caching_allocator.h"
#include "accel/memory/simulated_memory.h"
#include "accel/tensor/generator.h"

using namespace accel;
using namespace accel::memory;

namespace {

using Clock = std::chrono::steady_clock;

struct Pattern {
  const char* name;
  std::vector<std::size_t> sizes;  // allocation sizes in order
  std::size_t live;                // blocks kept alive before the oldest is freed
};

// The seed's training step at batch 64: activations, gradients and temporaries of one step.
std::vector<std::size_t> seed_step_sizes() {
  return {200704, 65536, 65536, 2560, 2560, 4, 2560, 10240, 40, 65536, 65536, 802816, 1024, 2560, 2560};
}

template <typename Alloc, typename Free>
double ns_per_pair(const Pattern& p, int rounds, Alloc alloc, Free release) {
  std::vector<void*> ring(p.live, nullptr);
  std::size_t at = 0;
  std::size_t count = 0;
  const auto start = Clock::now();
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t size : p.sizes) {
      if (ring[at]) release(ring[at], size);
      ring[at] = alloc(size);
      static_cast<volatile char*>(ring[at])[0] = 1;  // touch it, as a kernel would
      at = (at + 1) % ring.size();
      ++count;
    }
  }
  for (void*& ptr : ring) {
    if (ptr) release(ptr, 0);
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / static_cast<double>(count);
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 20000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--rounds") rounds = std::atoi(argv[i + 1]);
  }
  Generator gen(7);
  std::vector<std::size_t> mixed(64);
  for (std::size_t& s : mixed) s = 1 + gen.below(gen.below(8) == 0 ? 8u << 20 : 256u << 10);
  const std::vector<Pattern> patterns = {
      {"same 4 KiB block", {4096}, 1},
      {"seed training step (15 sizes)", seed_step_sizes(), 15},
      {"mixed 1 B - 8 MiB, 32 live", mixed, 32},
  };
  std::printf("%-34s %14s %16s %8s\n", "pattern", "malloc/free ns", "caching ns", "ratio");
  for (const Pattern& p : patterns) {
    // Interleave three repeats of each and keep the best, so both see the same machine state.
    double best_malloc = 1e30, best_caching = 1e30;
    for (int repeat = 0; repeat < 3; ++repeat) {
      best_malloc = std::min(best_malloc, ns_per_pair(
                                              p, rounds, [](std::size_t n) { return std::malloc(n); },
                                              [](void* ptr, std::size_t) { std::free(ptr); }));
      CachingAllocator caching(std::make_unique<SimulatedMemory>(std::size_t{64} << 30), {},
                               Device(DeviceType::Sim, 0));
      best_caching = std::min(best_caching, ns_per_pair(
                                                p, rounds, [&](std::size_t n) { return caching.malloc(n); },
                                                [&](void* ptr, std::size_t) { caching.free(ptr); }));
    }
    std::printf("%-34s %14.1f %16.1f %7.2fx\n", p.name, best_malloc, best_caching, best_malloc / best_caching);
  }
  std::printf("(ratio > 1: the caching allocator is faster than malloc/free)\n");
  return 0;
}
