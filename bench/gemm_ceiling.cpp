// The GEMM ceiling of the seed's training step on this machine: each GEMM a step runs (forward
// of both layers with their fused epilogues, the backward products a step needs), timed alone
// through the same oneDNN primitives accel trains with, best of many runs. Their sum times the
// steps per epoch is the epoch time if a step did nothing but GEMMs at full speed: the floor no
// framework beats on this CPU with this GEMM library. bench/train_bench.py prints each
// configuration's epoch time against it.
//
//   gemm_ceiling --batch-size 512 [--threads 2] [--dtype bfloat16]      -> one JSON line
// (--dtype: the operands' type, as autocast runs the GEMMs; float32 by default)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "accel/backends/backend.h"
#include "accel/tensor/kernel_args.h"

using namespace accel;

namespace {

struct Gemm {
  const char* name;
  Tensor a, b, c, bias;
  bool relu;
};

double best_seconds(const Gemm& g, int repeats) {
  Backend& backend = backend_for(kCPU);
  const TensorDesc bias = g.bias.defined() ? desc(g.bias) : TensorDesc{};
  const GemmEpilogue epilogue{g.bias.defined() ? &bias : nullptr, 0.0f, g.relu};
  const TensorDesc a = desc(g.a), b = desc(g.b), c = desc(g.c);
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    backend.gemm(a, b, c, epilogue, backend.default_stream());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t batch = 64;
  int threads = 0;
  DType dtype = DType::Float32;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--batch-size") batch = std::atoll(argv[i + 1]);
    if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    if (flag == "--dtype") dtype = parse_dtype(argv[i + 1]);
  }
  set_num_threads(threads);
  Generator gen(1);
  const auto random = [&](Shape shape) { return rand(shape, gen).to(dtype); };
  const auto empty_like_step = [&](Shape shape) { return empty(shape, dtype); };
  const Tensor x = random({batch, 784}), w1 = random({256, 784}), b1 = random({256});
  const Tensor h = random({batch, 256}), w2 = random({10, 256}), b2 = random({10});
  const Tensor g2 = random({batch, 10}), g1 = random({batch, 256});
  const std::vector<Gemm> step{
      {"layer 1 forward (+bias, relu)", x, w1.t(), empty_like_step({batch, 256}), b1, true},
      {"layer 2 forward (+bias)", h, w2.t(), empty_like_step({batch, 10}), b2, false},
      {"layer 2 input gradient", g2, w2, empty_like_step({batch, 256}), Tensor(), false},
      {"layer 2 weight gradient", g2.t(), h, empty_like_step({10, 256}), Tensor(), false},
      {"layer 1 weight gradient", g1.t(), x, empty_like_step({256, 784}), Tensor(), false},
  };
  double per_step = 0.0, flops = 0.0;
  std::string parts;
  for (const Gemm& g : step) {
    best_seconds(g, 20);  // plans compiled, caches warm
    const double seconds = best_seconds(g, 400);
    per_step += seconds;
    flops += 2.0 * static_cast<double>(g.a.shape()[0] * g.a.shape()[1] * g.b.shape()[1]);
    parts += std::string(parts.empty() ? "" : ", ") + "\"" + g.name + "\": " + std::to_string(seconds * 1e6);
  }
  const double steps = static_cast<double>((60000 + batch - 1) / batch);
  std::printf(
      "{\"batch_size\": %lld, \"dtype\": \"%s\", \"threads\": %d, \"gemm_seconds_per_step\": %.9f, "
      "\"gemm_seconds_per_epoch\": %.6f, "
      "\"gflops\": %.1f, \"microseconds\": {%s}}\n",
      static_cast<long long>(batch), std::string(dtype_name(dtype)).c_str(), get_num_threads(), per_step,
      per_step * steps, flops / per_step * 1e-9, parts.c_str());
  return 0;
}
