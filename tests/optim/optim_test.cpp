// Optimizer steps against values computed by hand from PyTorch's update formulas.
#include <gtest/gtest.h>

#include <cmath>

#include "accel/autograd/grad_mode.h"
#include "accel/ops/ops.h"
#include "accel/optim/optimizer.h"

using namespace accel;

namespace {
// A parameter [p0, p1] with gradient `g` set directly.
Tensor param_with_grad(std::vector<float> value, std::vector<float> grad) {
  Tensor p = from_vector(value, {static_cast<std::int64_t>(value.size())}).requires_grad_();
  p.set_grad(from_vector(grad, {static_cast<std::int64_t>(grad.size())}));
  return p;
}
}  // namespace

TEST(Adam, FirstTwoStepsMatchHandComputedValues) {
  Tensor p = param_with_grad({1.0f, -2.0f}, {0.5f, -0.1f});
  optim::Adam adam({p}, {.lr = 0.1});
  adam.step();
  // Step 1: m = 0.1 g, v = 0.001 g^2; m_hat = g, v_hat = g^2; p -= lr * g / (|g| + eps).
  EXPECT_NEAR(p.to_vector<float>()[0], 1.0f - 0.1f * 0.5f / (0.5f + 1e-8f), 1e-6);
  EXPECT_NEAR(p.to_vector<float>()[1], -2.0f + 0.1f, 1e-6);
  p.set_grad(from_vector<float>({0.5f, 0.3f}, {2}));
  adam.step();
  // Step 2 for element 1: g1 = -0.1, g2 = 0.3.
  const double m = 0.9 * (0.1 * -0.1) + 0.1 * 0.3;
  const double v = 0.999 * (0.001 * 0.01) + 0.001 * 0.09;
  const double m_hat = m / (1 - 0.81), v_hat = v / (1 - 0.998001);
  EXPECT_NEAR(p.to_vector<float>()[1], -1.9 - 0.1 * m_hat / (std::sqrt(v_hat) + 1e-8), 1e-6);
  EXPECT_EQ(adam.step_count(0), 2);
}

TEST(Adam, L2WeightDecayAddsToTheGradient) {
  Tensor p = param_with_grad({2.0f}, {0.0f});
  optim::Adam adam({p}, {.lr = 0.01, .weight_decay = 0.5});
  adam.step();  // g' = 0 + 0.5 * 2 = 1 -> step of lr * sign
  EXPECT_NEAR(p.item<float>(), 2.0f - 0.01f, 1e-6);
}

TEST(AdamW, DecoupledWeightDecayShrinksTheWeight) {
  Tensor p = param_with_grad({2.0f}, {1.0f});
  optim::AdamW adamw({p}, {});  // lr 1e-3, weight_decay 1e-2 (PyTorch defaults)
  EXPECT_DOUBLE_EQ(adamw.options().weight_decay, 1e-2);
  adamw.step();
  EXPECT_NEAR(p.item<float>(), 2.0f * (1.0f - 1e-3f * 1e-2f) - 1e-3f, 1e-6);
}

TEST(SGD, PlainMomentumNesterovAndWeightDecay) {
  Tensor plain = param_with_grad({1.0f}, {2.0f});
  optim::SGD({plain}, {.lr = 0.1}).step();
  EXPECT_NEAR(plain.item<float>(), 0.8f, 1e-6);

  Tensor p = param_with_grad({1.0f}, {2.0f});
  optim::SGD momentum({p}, {.lr = 0.1, .momentum = 0.9});
  momentum.step();  // buf = g = 2
  EXPECT_NEAR(p.item<float>(), 0.8f, 1e-6);
  p.set_grad(from_vector<float>({1.0f}, {1}));
  momentum.step();  // buf = 0.9 * 2 + 1 = 2.8
  EXPECT_NEAR(p.item<float>(), 0.8f - 0.28f, 1e-6);

  Tensor n = param_with_grad({1.0f}, {2.0f});
  optim::SGD nesterov({n}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  nesterov.step();  // buf = 2, d = 2 + 0.9 * 2 = 3.8
  EXPECT_NEAR(n.item<float>(), 1.0f - 0.38f, 1e-6);

  Tensor w = param_with_grad({1.0f}, {0.0f});
  optim::SGD decay({w}, {.lr = 0.1, .weight_decay = 0.5});
  decay.step();  // d = 0 + 0.5 * 1
  EXPECT_NEAR(w.item<float>(), 0.95f, 1e-6);
}

TEST(Optimizer, SkipsParametersWithoutGradientsAndZeroGradWorks) {
  Tensor a = param_with_grad({1.0f}, {1.0f});
  Tensor b = from_vector<float>({5.0f}, {1}).requires_grad_();
  optim::Adam adam({a, b}, {});
  adam.step();
  EXPECT_EQ(b.item<float>(), 5.0f);
  EXPECT_EQ(adam.step_count(1), 0);
  adam.zero_grad(false);
  EXPECT_EQ(a.grad().item<float>(), 0.0f);
  adam.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(Optimizer, RejectsInvalidOptionsAndNonLeafParameters) {
  Tensor p = zeros({1}).requires_grad_();
  EXPECT_THROW(optim::Adam({p}, {.lr = -1.0}), ValueError);
  EXPECT_THROW(optim::Adam({p}, {.beta1 = 1.0}), ValueError);
  EXPECT_THROW(optim::SGD({p}, {.lr = 0.1, .nesterov = true}), ValueError);
  EXPECT_THROW(optim::SGD({zeros({1})}, {}), ValueError);
  EXPECT_THROW(optim::SGD({p * 2.0}, {}), ValueError);
}

TEST(Optimizer, LargeParametersTakeTheParallelPathWithTheSameResult) {
  const std::int64_t n = 100000;
  Tensor big = full({n}, 1.0).requires_grad_();
  big.set_grad(full({n}, 0.5));
  Tensor small = full({1}, 1.0).requires_grad_();
  small.set_grad(full({1}, 0.5));
  optim::Adam a({big}, {}), b({small}, {});
  for (int i = 0; i < 3; ++i) {
    a.step();
    b.step();
  }
  const float expected = small.item<float>();
  for (float v : big.to_vector<float>()) ASSERT_EQ(v, expected);
}

namespace {
// Two parameters trained from the same start; `steps` Adam-like steps with fixed gradients.
std::vector<Tensor> two_params() {
  return {from_vector<float>({1.0f, -2.0f, 0.5f}, {3}).requires_grad_(),
          from_vector<float>({0.25f}, {1}).requires_grad_()};
}
void copy_values(const std::vector<Tensor>& dst, const std::vector<Tensor>& src) {
  autograd::NoGradGuard no_grad;
  for (std::size_t i = 0; i < dst.size(); ++i) {
    Tensor d = dst[i];
    copy_(d, src[i]);
  }
}
void steps(optim::Optimizer& opt, const std::vector<Tensor>& params, int n, float scale) {
  for (int s = 0; s < n; ++s) {
    params[0].set_grad(from_vector<float>({0.1f * scale, -0.3f, 0.7f * static_cast<float>(s)}, {3}));
    params[1].set_grad(from_vector<float>({scale}, {1}));
    opt.step();
  }
}
}  // namespace

TEST(OptimizerStateDict, AdamResumesExactlyWhereItStopped) {
  const auto straight = two_params();
  optim::Adam a(straight, {.lr = 0.05, .beta1 = 0.8, .weight_decay = 0.1});
  steps(a, straight, 5, 1.0f);

  const auto first = two_params(), resumed = two_params();
  optim::Adam b(first, {.lr = 0.05, .beta1 = 0.8, .weight_decay = 0.1});
  steps(b, first, 3, 1.0f);
  const auto state = b.state_dict();
  EXPECT_EQ(state.at("state.0.step").item<std::int64_t>(), 3);
  EXPECT_EQ(state.at("state.1.exp_avg").shape(), (Shape{1}));
  EXPECT_EQ(state.at("param_groups.0.beta1").dtype(), DType::Float64);
  EXPECT_DOUBLE_EQ(state.at("param_groups.0.lr").item_double(), 0.05);  // exact: float64, not float32
  // A fresh optimizer with other options takes them, and the moments, from the state dict.
  optim::Adam c(resumed, {});
  copy_values(resumed, first);
  c.load_state_dict(state);
  EXPECT_DOUBLE_EQ(c.options().beta1, 0.8);
  EXPECT_EQ(c.step_count(0), 3);
  // The loaded state is a copy: stepping `b` further does not change it.
  steps(b, first, 2, 1.0f);
  // s continues from 0 in this helper, so replay the last two straight steps by hand.
  for (int s = 3; s < 5; ++s) {
    resumed[0].set_grad(from_vector<float>({0.1f, -0.3f, 0.7f * static_cast<float>(s)}, {3}));
    resumed[1].set_grad(from_vector<float>({1.0f}, {1}));
    c.step();
  }
  EXPECT_EQ(resumed[0].to_vector<float>(), straight[0].to_vector<float>());
  EXPECT_EQ(resumed[1].to_vector<float>(), straight[1].to_vector<float>());
}

TEST(OptimizerStateDict, SgdMomentumRoundTrips) {
  const auto p = two_params(), q = two_params();
  optim::SGD a(p, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  steps(a, p, 2, 1.0f);
  optim::SGD b(q, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  copy_values(q, p);
  b.load_state_dict(a.state_dict());
  steps(a, p, 1, 2.0f);
  steps(b, q, 1, 2.0f);
  EXPECT_EQ(q[0].to_vector<float>(), p[0].to_vector<float>());
}

TEST(OptimizerStateDict, BadStateIsATypedErrorAndChangesNothing) {
  const auto p = two_params();
  optim::Adam adam(p, {.lr = 0.01});
  steps(adam, p, 1, 1.0f);
  const auto good = adam.state_dict();
  const auto with = [&](const std::string& key, const Tensor& value) {
    auto s = good;
    if (value.defined()) {
      s[key] = value;
    } else {
      s.erase(key);
    }
    return s;
  };
  EXPECT_THROW(adam.load_state_dict(with("state.0.exp_avg", zeros({4}))), ShapeError);
  EXPECT_THROW(adam.load_state_dict(with("state.0.exp_avg_sq", Tensor())), ValueError);  // incomplete
  EXPECT_THROW(adam.load_state_dict(with("state.7.exp_avg", zeros({3}))), ValueError);   // no parameter 7
  EXPECT_THROW(adam.load_state_dict(with("state.x.exp_avg", zeros({3}))), ValueError);
  EXPECT_THROW(adam.load_state_dict(with("state.0.momentum", zeros({3}))), ValueError);
  EXPECT_THROW(adam.load_state_dict(with("state.0.step", scalar_tensor(0, DType::Int64))), ValueError);
  EXPECT_THROW(adam.load_state_dict(with("state.0.step", scalar_tensor(1.5))), ValueError);  // not whole
  EXPECT_THROW(adam.load_state_dict(with("param_groups.0.lr", zeros({2}, DType::Float64))), DTypeError);
  EXPECT_THROW(adam.load_state_dict(with("param_groups.0.beta1", scalar_tensor(1.5, DType::Float64))), ValueError);
  EXPECT_THROW(adam.load_state_dict(with("param_groups.0.amsgrad", scalar_tensor(1.0, DType::Float64))), ValueError);
  EXPECT_DOUBLE_EQ(adam.options().lr, 0.01);
  EXPECT_EQ(adam.step_count(0), 1);
  // PyTorch keeps the step as a float32 tensor: a whole float32 value loads.
  adam.load_state_dict(with("state.0.step", scalar_tensor(4.0)));
  EXPECT_EQ(adam.step_count(0), 4);
  EXPECT_EQ(adam.state_dict().at("state.0.exp_avg").to_vector<float>(), good.at("state.0.exp_avg").to_vector<float>());
}
