// Allocate/free throughput: accel's caching allocator (simulated device: the same core as on
// CUDA, with host memory underneath) against plain malloc/free, side by side in one run.
// Prints nanoseconds per allocate+free pair and the ratio. On a machine with a GPU, --cuda adds
// the CUDA rows: cudaMalloc/cudaFree against the caching allocator over them; --json prints the
// patterns (sizes, live blocks) and results for bench/cuda_alloc_vs_torch.py, which runs
// PyTorch's CUDA caching allocator on the same patterns.
//
//   build/allocator_bench [--rounds N] [--cuda [--cuda-rounds N]] [--json]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "accel/hw/cuda_api.h"
#include "accel/memory/caching_allocator.h"
#include "accel/memory/simulated_memory.h"
#ifdef ACCEL_WITH_CUDA
#include "accel/backends/cuda/cuda_memory.h"
#endif
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

// `touch`: write the first byte, as a kernel would (host memory only).
template <typename Alloc, typename Free>
double ns_per_pair(const Pattern& p, int rounds, Alloc alloc, Free release, bool touch = true) {
  std::vector<void*> ring(p.live, nullptr);
  std::size_t at = 0;
  std::size_t count = 0;
  const auto start = Clock::now();
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t size : p.sizes) {
      if (ring[at]) release(ring[at], size);
      ring[at] = alloc(size);
      if (touch) static_cast<volatile char*>(ring[at])[0] = 1;
      at = (at + 1) % ring.size();
      ++count;
    }
  }
  for (void*& ptr : ring) {
    if (ptr) release(ptr, 0);
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / static_cast<double>(count);
}

struct Row {
  std::string device;
  const Pattern* pattern;
  double baseline_ns;
  double caching_ns;
};

// Host rows: malloc/free against the caching core over simulated (host) memory.
Row host_row(const Pattern& p, int rounds) {
  // Interleave three repeats of each and keep the best, so both see the same machine state.
  double best_malloc = 1e30, best_caching = 1e30;
  for (int repeat = 0; repeat < 3; ++repeat) {
    best_malloc = std::min(best_malloc, ns_per_pair(
                                            p, rounds, [](std::size_t n) { return std::malloc(n); },
                                            [](void* ptr, std::size_t) { std::free(ptr); }));
    CachingAllocator caching(std::make_unique<SimulatedMemory>(std::size_t{64} << 30), {}, Device(DeviceType::Sim, 0));
    best_caching = std::min(best_caching, ns_per_pair(
                                              p, rounds, [&](std::size_t n) { return caching.malloc(n); },
                                              [&](void* ptr, std::size_t) { caching.free(ptr); }));
  }
  return {"host", &p, best_malloc, best_caching};
}

#ifdef ACCEL_WITH_CUDA
// CUDA rows: cudaMalloc/cudaFree (through CudaMemory) against the caching allocator on cuda:0.
Row cuda_row(const Pattern& p, int rounds) {
  double best_raw = 1e30, best_caching = 1e30;
  for (int repeat = 0; repeat < 3; ++repeat) {
    auto raw = make_cuda_memory(0);
    best_raw = std::min(best_raw, ns_per_pair(
                                      p, rounds, [&](std::size_t n) { return raw->raw_allocate(n); },
                                      [&](void* ptr, std::size_t n) { raw->raw_free(ptr, n); }, false));
    CachingAllocator caching(make_cuda_memory(0), {}, Device(DeviceType::CUDA, 0));
    best_caching = std::min(best_caching, ns_per_pair(
                                              p, rounds, [&](std::size_t n) { return caching.malloc(n); },
                                              [&](void* ptr, std::size_t) { caching.free(ptr); }, false));
  }
  return {"cuda:0", &p, best_raw, best_caching};
}
#endif

void print_json(const std::vector<Row>& rows) {
  std::printf("[\n");
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    std::printf(
        "  {\"device\": \"%s\", \"pattern\": \"%s\", \"live\": %zu, \"baseline_ns\": %.1f, "
        "\"caching_ns\": %.1f, \"sizes\": [",
        row.device.c_str(), row.pattern->name, row.pattern->live, row.baseline_ns, row.caching_ns);
    for (std::size_t i = 0; i < row.pattern->sizes.size(); ++i) {
      std::printf("%s%zu", i ? ", " : "", row.pattern->sizes[i]);
    }
    std::printf("]}%s\n", r + 1 < rows.size() ? "," : "");
  }
  std::printf("]\n");
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 20000;
  int cuda_rounds = 300;
  bool with_cuda = false, json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    if (arg == "--cuda-rounds" && i + 1 < argc) cuda_rounds = std::atoi(argv[++i]);
    if (arg == "--cuda") with_cuda = true;
    if (arg == "--json") json = true;
  }
  Generator gen(7);
  std::vector<std::size_t> mixed(64);
  for (std::size_t& s : mixed) s = 1 + gen.below(gen.below(8) == 0 ? 8u << 20 : 256u << 10);
  const std::vector<Pattern> patterns = {
      {"same 4 KiB block", {4096}, 1},
      {"seed training step (15 sizes)", seed_step_sizes(), 15},
      {"mixed 1 B - 8 MiB, 32 live", mixed, 32},
  };
  std::vector<Row> rows;
  for (const Pattern& p : patterns) rows.push_back(host_row(p, rounds));
  if (with_cuda) {
#ifdef ACCEL_WITH_CUDA
    if (!cuda::is_available()) {
      std::fprintf(stderr, "allocator_bench: --cuda: no CUDA device on this machine\n");
      return 2;
    }
    for (const Pattern& p : patterns) rows.push_back(cuda_row(p, cuda_rounds));
#else
    std::fprintf(stderr, "allocator_bench: --cuda: this build has no CUDA (ACCEL_WITH_CUDA=OFF)\n");
    return 2;
#endif
  }
  if (json) {
    print_json(rows);
    return 0;
  }
  std::printf("%-8s %-34s %16s %12s %8s\n", "device", "pattern", "malloc/free ns", "caching ns", "ratio");
  for (const Row& row : rows) {
    std::printf("%-8s %-34s %16.1f %12.1f %7.2fx\n", row.device.c_str(), row.pattern->name, row.baseline_ns,
                row.caching_ns, row.baseline_ns / row.caching_ns);
  }
  std::printf("(malloc/free: glibc on the host, cudaMalloc/cudaFree on cuda:0; ratio > 1: caching is faster)\n");
  return 0;
}
