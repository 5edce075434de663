// The CUDA kernels' index arithmetic and per-element updates (backends/cuda/device_math.h), run
// on the CPU: the development machines have no GPU, and these are the exact functions the
// kernels call. Each is checked against the CPU backend or a plain loop.
#include <gtest/gtest.h>

#include <vector>

#include "accel/backends/backend.h"
#include "accel/backends/cuda/device_math.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

using namespace accel;
using namespace accel::cuda_backend;

TEST(CudaDeviceMath, StridedOffsetsWalkAPermutedViewInRowMajorOrder) {
  const Tensor base = arange(std::int64_t{24}, DType::Float32).reshape({2, 3, 4});
  const Tensor view = base.permute({2, 0, 1});  // sizes [4, 2, 3], strides [1, 12, 4]
  const std::vector<float> expected = view.contiguous().to_vector<float>();
  const Strided at = strided(desc(view));
  const float* data = base.data_ptr<float>();
  for (std::int64_t i = 0; i < view.numel(); ++i) {
    EXPECT_EQ(data[offset_of(i, at)], expected[static_cast<std::size_t>(i)]) << "element " << i;
  }
}

TEST(CudaDeviceMath, ABroadcastOperandRepeatsAlongItsZeroStrideDims) {
  const Tensor out = zeros({3, 4});
  const Tensor row = arange(std::int64_t{4}, DType::Float32);  // [4], read over [3, 4]
  const Tensor column = arange(std::int64_t{3}, DType::Float32).reshape({3, 1});
  const Strided row_at = strided_over(desc(out), desc_broadcast(row, out.shape()));
  const Strided column_at = strided_over(desc(out), desc_broadcast(column, out.shape()));
  for (std::int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(offset_of(i, row_at), i % 4) << i;
    EXPECT_EQ(offset_of(i, column_at), i / 4) << i;
  }
}

TEST(CudaDeviceMath, AGridStrideLoopVisitsEveryElementOnceForAnySize) {
  // A kernel's loop: i = block * kThreads + thread, then += blocks * kThreads.
  for (const std::int64_t n : {std::int64_t{0}, std::int64_t{1}, std::int64_t{255}, std::int64_t{256},
                               std::int64_t{257}, kThreads * kMaxBlocks + 12345}) {
    const std::int64_t blocks = blocks_for(n);
    ASSERT_GE(blocks, 1);
    ASSERT_LE(blocks, kMaxBlocks);
    std::vector<std::uint8_t> visits(static_cast<std::size_t>(n), 0);
    for (std::int64_t thread = 0; thread < blocks * kThreads; ++thread) {
      for (std::int64_t i = thread; i < n; i += blocks * kThreads) ++visits[static_cast<std::size_t>(i)];
    }
    for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(visits[static_cast<std::size_t>(i)], 1) << "n " << n << ", i " << i;
  }
}

TEST(CudaDeviceMath, ReduceLayoutReadsWhatTheCpuSumReduces) {
  Generator g(3);
  const Tensor x = rand({2, 5, 3}, g);  // [outer 2, reduced 5, inner 3]
  const std::vector<float> want = sum(x, {1}).to_vector<float>();
  const ReduceLayout layout{2, 5, 3};
  ASSERT_EQ(layout.outputs(), 6);
  const float* in = x.data_ptr<float>();
  for (std::int64_t o = 0; o < layout.outputs(); ++o) {
    float acc = 0;
    for (std::int64_t r = 0; r < layout.reduced; ++r) acc += in[layout.first_input(o) + r * layout.inner];
    EXPECT_FLOAT_EQ(acc, want[static_cast<std::size_t>(o)]) << "output " << o;
  }
}

namespace {

struct Buffers {
  std::vector<float> w, g, m, v;
};

Buffers random_buffers(std::size_t n, std::uint64_t seed) {
  Generator gen(seed);
  const auto draw = [&](double lo, double hi) {
    return rand({static_cast<std::int64_t>(n)}, gen, lo, hi).to_vector<float>();
  };
  return {draw(-1, 1), draw(-1, 1), draw(-0.1, 0.1), draw(0, 0.01)};
}

}  // namespace

TEST(CudaDeviceMath, AdamElementUpdatesAsTheCpuBackendInEveryDecayMode) {
  for (const auto& [weight_decay, decoupled] : {std::pair{0.0, false}, std::pair{0.01, false}, std::pair{0.01, true}}) {
    const AdamHyper hyper{.lr = 1e-3,
                          .beta1 = 0.9,
                          .beta2 = 0.999,
                          .eps = 1e-8,
                          .weight_decay = weight_decay,
                          .decoupled_weight_decay = decoupled,
                          .step = 3};
    Buffers cpu = random_buffers(1000, 11), device = cpu;
    const ParamBuffers params{cpu.w.data(), cpu.g.data(), cpu.m.data(), cpu.v.data(), 1000};
    Backend& backend = backend_for(kCPU);
    backend.adam_step(std::span(&params, 1), hyper, backend.default_stream());

    const AdamConstants constants =
        adam_constants(hyper.lr, hyper.beta1, hyper.beta2, hyper.eps, weight_decay, decoupled);
    const AdamScalars scalars = adam_scalars(hyper.lr, hyper.beta1, hyper.beta2, hyper.step);
    for (std::size_t i = 0; i < 1000; ++i) {
      adam_element(device.w[i], device.g[i], device.m[i], device.v[i], constants, scalars);
      // The same operations in the same order; a GPU may fuse multiply-adds (one rounding).
      EXPECT_NEAR(device.w[i], cpu.w[i], 1e-6f * std::max(1.0f, std::abs(cpu.w[i]))) << "weight decay " << weight_decay;
      EXPECT_NEAR(device.m[i], cpu.m[i], 1e-7f) << i;
      EXPECT_NEAR(device.v[i], cpu.v[i], 1e-9f) << i;
    }
    EXPECT_NE(cpu.w, random_buffers(1000, 11).w) << "the step changed the weights";
  }
}

TEST(CudaDeviceMath, SgdElementUpdatesAsTheCpuBackendWithMomentumAndNesterov) {
  for (const bool nesterov : {false, true}) {
    for (const bool first_step : {true, false}) {
      const SgdHyper hyper{.lr = 0.1f,
                           .momentum = 0.9f,
                           .dampening = 0.0f,
                           .weight_decay = 1e-4f,
                           .nesterov = nesterov,
                           .first_step = first_step};
      Buffers cpu = random_buffers(500, 5), device = cpu;
      const ParamBuffers params{cpu.w.data(), cpu.g.data(), cpu.m.data(), nullptr, 500};
      Backend& backend = backend_for(kCPU);
      backend.sgd_step(std::span(&params, 1), hyper, backend.default_stream());
      const SgdConstants constants{hyper.lr,           hyper.momentum,   hyper.dampening,
                                   hyper.weight_decay, nesterov ? 1 : 0, first_step ? 1 : 0};
      for (std::size_t i = 0; i < 500; ++i) {
        sgd_element(device.w[i], device.g[i], &device.m[i], constants);
        EXPECT_NEAR(device.w[i], cpu.w[i], 1e-6f) << i;
        EXPECT_NEAR(device.m[i], cpu.m[i], 1e-6f) << i;
      }
    }
  }
}
