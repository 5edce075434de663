// Every differentiable op's gradient against central finite differences, and the engine's
// bookkeeping (accumulation, shared inputs, no_grad, skipped gradients).
#include <gtest/gtest.h>

#include "../support/gradcheck.h"
#include "accel/autograd/grad_mode.h"
#include "accel/autograd/node.h"
#include "accel/nn/layers.h"
#include "accel/ops/ops.h"

using namespace accel;
using accel::testing::expect_gradients_match;

namespace {
Tensor random_tensor(const Shape& shape, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Generator g(seed);
  return rand(shape, g, lo, hi);
}
using Inputs = const std::vector<Tensor>&;
}  // namespace

TEST(Gradients, BroadcastingArithmetic) {
  const Tensor a = random_tensor({3, 4}, 1), b = random_tensor({4}, 2), c = random_tensor({3, 1}, 3, 0.5, 2.0);
  expect_gradients_match("add", [](Inputs in) { return add(in[0], in[1]); }, {a, b});
  expect_gradients_match("sub", [](Inputs in) { return sub(in[0], in[1]); }, {a, c});
  expect_gradients_match("mul", [](Inputs in) { return mul(in[0], in[1]); }, {a, b});
  expect_gradients_match("div", [](Inputs in) { return div(in[0], in[1]); }, {a, c});
  expect_gradients_match("scalar ops", [](Inputs in) { return (in[0] * 3.0 + 1.0) / 2.0 - 0.5; }, {a});
}

TEST(Gradients, UnaryOps) {
  const Tensor a = random_tensor({2, 5}, 4);
  const Tensor positive = random_tensor({2, 5}, 5, 0.5, 2.0);
  const Tensor away_from_zero = from_vector<float>({-1.5f, -0.7f, -0.2f, 0.3f, 0.9f, 1.7f}, {2, 3});
  expect_gradients_match("neg", [](Inputs in) { return neg(in[0]); }, {a});
  expect_gradients_match("exp", [](Inputs in) { return exp(in[0]); }, {a});
  expect_gradients_match("log", [](Inputs in) { return log(in[0]); }, {positive});
  expect_gradients_match("relu", [](Inputs in) { return relu(in[0]); }, {away_from_zero});
}

TEST(Gradients, MatmulAndLinear) {
  const Tensor a = random_tensor({3, 4}, 6), b = random_tensor({4, 2}, 7);
  expect_gradients_match("matmul", [](Inputs in) { return matmul(in[0], in[1]); }, {a, b});
  expect_gradients_match("matmul of transposed views", [](Inputs in) { return matmul(in[1].t(), in[0].t()); }, {a, b});
  const Tensor x = random_tensor({5, 4}, 8), w = random_tensor({3, 4}, 9), bias = random_tensor({3}, 10);
  expect_gradients_match("linear", [](Inputs in) { return linear(in[0], in[1], in[2]); }, {x, w, bias});
  expect_gradients_match("linear without bias", [](Inputs in) { return linear(in[0], in[1]); }, {x, w});
  // Keep pre-activations away from ReLU's kink so finite differences stay on one side.
  const Tensor shifted_bias = from_vector<float>({3.0f, -3.0f, 2.5f}, {3});
  expect_gradients_match("linear_relu", [](Inputs in) { return linear_relu(in[0], in[1], in[2]); },
                         {x, w, shifted_bias});
}

// Three layers as one node, on the CPU (ReLU gradients over the activations) and on sim (the
// ReLU masks applied in the GEMMs, as a GPU does); a layer without a bias, a ReLU after the last.
TEST(Gradients, MlpOnTheCpuAndThroughTheReluMasksOfSim) {
  const Tensor x = random_tensor({5, 4}, 21), w1 = random_tensor({3, 4}, 22), w2 = random_tensor({4, 3}, 23);
  const Tensor w3 = random_tensor({2, 4}, 24);
  // Pre-activations away from ReLU's kink, so finite differences stay on one side.
  const Tensor b1 = from_vector<float>({2.5f, -2.5f, 3.0f}, {3}), b3 = from_vector<float>({2.0f, -0.5f}, {2});
  for (Device device : {kCPU, Device("sim:0")}) {
    const auto f = [device](Inputs in) {
      std::vector<Tensor> on;
      for (const Tensor& t : in) on.push_back(t.to(device));
      const std::vector<LinearLayer> layers{{on[1], on[2]}, {on[3], Tensor()}, {on[4], on[5]}};
      return mlp(on[0], layers, true).to(kCPU);
    };
    expect_gradients_match("mlp on " + device.to_string(), f, {x, w1, b1, w2, w3, b3});
  }
}

// Frozen layers and a hidden layer of width 0: the gradients that are asked for, on the CPU and
// through sim's masks alike.
TEST(Gradients, MlpWithFrozenLayersOrAnEmptyHiddenLayer) {
  const auto run = [](Device device, bool freeze_last) {
    Tensor w1 = random_tensor({3, 4}, 31).to(device).requires_grad_(), b1 = random_tensor({3}, 32).to(device);
    Tensor w2 = random_tensor({2, 3}, 33).to(device), b2 = random_tensor({2}, 34).to(device);
    if (!freeze_last) w2.requires_grad_();
    const std::vector<LinearLayer> layers{{w1, b1}, {w2, b2}};
    sum(mlp(random_tensor({5, 4}, 35).to(device), layers)).backward();
    EXPECT_FALSE(b1.grad().defined());
    EXPECT_EQ(w2.grad().defined(), !freeze_last);
    return w1.grad().to(kCPU).to_vector<float>();
  };
  for (bool freeze_last : {false, true}) {
    EXPECT_EQ(run(kCPU, freeze_last), run(Device("sim:0"), freeze_last)) << "last layer frozen: " << freeze_last;
  }
  for (Device device : {kCPU, Device("sim:0")}) {
    Tensor w1 = zeros({0, 4}, DType::Float32, device).requires_grad_(), b1 = zeros({0}, DType::Float32, device);
    Tensor w2 = zeros({3, 0}, DType::Float32, device).requires_grad_();
    Tensor b2 = from_vector<float>({1.0f, -2.0f, 3.0f}, {3}).to(device).requires_grad_();
    const std::vector<LinearLayer> layers{{w1, b1.requires_grad_()}, {w2, b2}};
    const Tensor out = mlp(random_tensor({2, 4}, 36).to(device), layers);
    EXPECT_EQ(out.to(kCPU).to_vector<float>(), (std::vector<float>{1, -2, 3, 1, -2, 3})) << device.to_string();
    sum(out).backward();
    EXPECT_EQ(b2.grad().to(kCPU).to_vector<float>(), (std::vector<float>{2, 2, 2})) << device.to_string();
    EXPECT_EQ(w1.grad().shape(), (Shape{0, 4})) << device.to_string();
  }
}

TEST(Gradients, Reductions) {
  const Tensor t = random_tensor({2, 3, 4}, 11);
  expect_gradients_match("sum all", [](Inputs in) { return sum(in[0]); }, {t});
  expect_gradients_match("sum dim 1", [](Inputs in) { return sum(in[0], {1}); }, {t});
  expect_gradients_match("sum dims 0,2 keepdim", [](Inputs in) { return sum(in[0], {0, 2}, true); }, {t});
  expect_gradients_match("mean dim -1", [](Inputs in) { return mean(in[0], {-1}); }, {t});
  expect_gradients_match("mean all", [](Inputs in) { return mean(in[0]); }, {t});
}

TEST(Gradients, SoftmaxAndLosses) {
  const Tensor logits = random_tensor({4, 5}, 12, -2.0, 2.0);
  const Tensor targets = from_vector<std::int64_t>({0, 4, 2, 2}, {4});
  expect_gradients_match("log_softmax dim 1", [](Inputs in) { return log_softmax(in[0], 1); }, {logits});
  expect_gradients_match("log_softmax dim 0", [](Inputs in) { return log_softmax(in[0], 0); }, {logits});
  expect_gradients_match("softmax", [](Inputs in) { return softmax(in[0], 1); }, {logits});
  expect_gradients_match("cross_entropy", [](Inputs in) { return cross_entropy(in[0], in[1]); }, {logits, targets});
  expect_gradients_match("mse_loss", [](Inputs in) { return mse_loss(in[0], in[1]); },
                         {logits, random_tensor({4, 5}, 13)});
}

TEST(Gradients, ViewsAndConversions) {
  const Tensor t = random_tensor({3, 4}, 14);
  expect_gradients_match("reshape", [](Inputs in) { return mul(in[0].reshape({2, 6}), in[0].reshape({2, 6})); }, {t});
  expect_gradients_match("transpose", [](Inputs in) { return in[0].transpose(0, 1) * 2.0; }, {t});
  expect_gradients_match("permute", [](Inputs in) { return in[0].reshape({3, 2, 2}).permute({2, 0, 1}) * 1.5; }, {t});
  expect_gradients_match("slice", [](Inputs in) { return in[0].slice(1, 1, 4, 2) * 3.0; }, {t});
  expect_gradients_match("select", [](Inputs in) { return in[0].select(0, -1) * 3.0; }, {t});
  expect_gradients_match("expand", [](Inputs in) { return in[0].slice(0, 0, 1).expand({5, 4}) * 1.0; }, {t});
  expect_gradients_match("flatten + contiguous", [](Inputs in) { return in[0].t().contiguous().flatten() * 2.0; }, {t});
  expect_gradients_match("clone", [](Inputs in) { return in[0].clone() * 2.0; }, {t});
}

TEST(Gradients, TheSeedModelEndToEnd) {
  Generator g(15);
  nn::Sequential model(nn::Linear(6, 5, true, g), nn::ReLU(), nn::Linear(5, 3, true, g));
  const Tensor x = random_tensor({4, 6}, 16);
  const Tensor y = from_vector<std::int64_t>({0, 2, 1, 2}, {4});
  const auto params = model.parameters();
  expect_gradients_match("Sequential(Linear, ReLU, Linear) + cross_entropy",
                         [&](Inputs in) {
                           const Tensor h = relu(linear(in[0], in[1], in[2]));
                           return cross_entropy(linear(h, in[3], in[4]), y);
                         },
                         {x, params[0], params[1], params[2], params[3]});
}

TEST(Gradients, DTypeRoundTripPassesTheGradientStraightThrough) {
  // Rounding to bfloat16 is a step function, so finite differences say nothing; PyTorch (and
  // accel) pass the gradient through the cast unchanged.
  Tensor x = from_vector<float>({0.5f, 1.1f, -2.3f}, {3}).requires_grad_();
  sum(x.to(DType::BFloat16).to(DType::Float32) * 3.0).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3.0f, 3.0f, 3.0f}));
}

TEST(AutogradEngine, AccumulatesAcrossUsesAndBackwardCalls) {
  Tensor x = from_vector<float>({2.0f, 3.0f}, {2}).requires_grad_();
  sum(mul(x, x) + x).backward();  // d/dx (x^2 + x) = 2x + 1
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{5.0f, 7.0f}));
  sum(x * 2.0).backward();  // accumulates
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{7.0f, 9.0f}));
}

TEST(AutogradEngine, SharedGradientsAreNotAliasedBetweenLeaves) {
  Tensor a = ones({2}).requires_grad_();
  Tensor b = ones({2}).requires_grad_();
  sum(a + b).backward();
  sum(a * 3.0).backward();
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{4.0f, 4.0f}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{1.0f, 1.0f}));
}

TEST(AutogradEngine, NoGradRecordsNothingAndInputsWithoutGradGetNone) {
  Tensor w = ones({3, 2}).requires_grad_();
  Tensor x = ones({4, 2});
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(linear(x, w).requires_grad());
  }
  Tensor out = linear(x, w);
  EXPECT_TRUE(out.requires_grad());
  EXPECT_EQ(out.grad_fn()->name(), "LinearBackward");
  sum(out).backward();
  EXPECT_FALSE(x.grad().defined());
  EXPECT_TRUE(w.grad().defined());
}

TEST(AutogradEngine, BackwardNeedsAScalarOrAGradient) {
  Tensor x = ones({3}).requires_grad_();
  Tensor y = x * 2.0;
  EXPECT_THROW(y.backward(), ShapeError);
  y.backward(from_vector<float>({1.0f, 0.0f, 2.0f}, {3}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{2.0f, 0.0f, 4.0f}));
  EXPECT_THROW(ones({1}).backward(), ValueError);
  EXPECT_THROW(y.backward(ones({2})), ShapeError);
}

TEST(AutogradEngine, DeepChainsDoNotOverflowTheStack) {
  Tensor x = ones({1}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y + 1.0;
  sum(y).backward();
  EXPECT_EQ(x.grad().item<float>(), 1.0f);
}
