// Each op's forward against a reference computed by plain loops, plus the errors users see.
#include <gtest/gtest.h>

#include "accel/core/philox.h"

#include <cmath>
#include <numeric>

#include "accel/ops/ops.h"

using namespace accel;

namespace {

std::vector<float> random_values(std::size_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Generator g(seed);
  std::vector<float> v(n);
  for (float& x : v) x = lo + (hi - lo) * g.uniform();
  return v;
}

Tensor random_tensor(const Shape& shape, std::uint64_t seed) {
  return from_vector(random_values(static_cast<std::size_t>(shape.numel()), seed), shape);
}

void expect_all_near(const std::vector<float>& actual, const std::vector<float>& expected, float tol = 1e-5f) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], expected[i], tol * std::max(1.0f, std::abs(expected[i]))) << "at " << i;
}

std::vector<float> naive_matmul(const std::vector<float>& a, const std::vector<float>& b, int m, int k, int n) {
  std::vector<float> c(static_cast<std::size_t>(m * n), 0.0f);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int p = 0; p < k; ++p) acc += static_cast<double>(a[i * k + p]) * b[p * n + j];
      c[i * n + j] = static_cast<float>(acc);
    }
  return c;
}

template <typename E>
void expect_error_mentions(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL() << "expected an error";
  } catch (const E& e) {
    for (const auto& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what() << " lacks " << part;
  }
}

}  // namespace

TEST(Elementwise, BroadcastingArithmeticMatchesLoops) {
  const Tensor a = random_tensor({4, 1, 3}, 1);
  const Tensor b = random_tensor({5, 1}, 2);
  const auto av = a.to_vector<float>(), bv = b.to_vector<float>();
  std::vector<float> sum_ref, diff_ref, prod_ref, quot_ref;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j)
      for (int k = 0; k < 3; ++k) {
        const float x = av[i * 3 + k], y = bv[j];
        sum_ref.push_back(x + y);
        diff_ref.push_back(x - y);
        prod_ref.push_back(x * y);
        quot_ref.push_back(x / y);
      }
  EXPECT_EQ(add(a, b).shape(), (Shape{4, 5, 3}));
  expect_all_near(add(a, b).to_vector<float>(), sum_ref);
  expect_all_near(sub(a, b).to_vector<float>(), diff_ref);
  expect_all_near(mul(a, b).to_vector<float>(), prod_ref);
  expect_all_near(div(a, b).to_vector<float>(), quot_ref);
}

TEST(Elementwise, StridedOperandsAndScalars) {
  const Tensor m = random_tensor({3, 4}, 3);
  const Tensor mt = m.t();  // [4, 3] view
  const Tensor other = random_tensor({4, 3}, 4);
  const auto expected = add(mt.contiguous(), other).to_vector<float>();
  expect_all_near(add(mt, other).to_vector<float>(), expected);
  expect_all_near((m * 2.0 + 1.0).to_vector<float>(), [&] {
    auto v = m.to_vector<float>();
    for (float& x : v) x = x * 2.0f + 1.0f;
    return v;
  }());
  expect_all_near((-m).to_vector<float>(), mul(m, -1.0).to_vector<float>());
}

TEST(Elementwise, LargeInputsTakeTheParallelPathWithTheSameResult) {
  const Tensor a = random_tensor({300, 200}, 5);
  const Tensor b = random_tensor({200}, 6);
  const auto av = a.to_vector<float>(), bv = b.to_vector<float>();
  std::vector<float> ref(av.size());
  for (std::size_t i = 0; i < av.size(); ++i) ref[i] = av[i] * bv[i % 200];
  expect_all_near(mul(a, b).to_vector<float>(), ref);
  std::vector<float> relu_ref(av.size());
  for (std::size_t i = 0; i < av.size(); ++i) relu_ref[i] = std::max(av[i], 0.0f);
  EXPECT_EQ(relu(a).to_vector<float>(), relu_ref);
}

TEST(Elementwise, UnaryOps) {
  const Tensor a = from_vector<float>({-2.0f, 0.5f, 3.0f}, {3});
  expect_all_near(exp(a).to_vector<float>(), {std::exp(-2.0f), std::exp(0.5f), std::exp(3.0f)});
  expect_all_near(log(from_vector<float>({0.5f, 1.0f, 8.0f}, {3})).to_vector<float>(),
                  {std::log(0.5f), 0.0f, std::log(8.0f)});
  EXPECT_EQ(relu(a).to_vector<float>(), (std::vector<float>{0.0f, 0.5f, 3.0f}));
}

TEST(Elementwise, ErrorsNameTheOpShapesAndDTypes) {
  expect_error_mentions<ShapeError>([] { add(zeros({64, 256}), zeros({10})); }, {"add", "[64, 256]", "[10]"});
  expect_error_mentions<DTypeError>([] { add(ones({2}, DType::Bool), ones({2}, DType::Bool)); }, {"add", "bool"});
  expect_error_mentions<DTypeError>(
      [] {
        linear(zeros({2, 3}), zeros({4, 3}, DType::BFloat16));
      },
      {"linear", "float32", "bfloat16", "autocast"});
  expect_error_mentions<DTypeError>([] { log_softmax(zeros({2, 3}, DType::Int64), 1); }, {"log_softmax", "int64"});
}

TEST(Elementwise, TypePromotionFollowsPyTorch) {
  const auto type_of = [](DType a, DType b) { return mul(ones({2}, a), ones({2}, b)).dtype(); };
  EXPECT_EQ(type_of(DType::Float32, DType::Int64), DType::Float32);
  EXPECT_EQ(type_of(DType::BFloat16, DType::Float16), DType::Float32);
  EXPECT_EQ(type_of(DType::BFloat16, DType::Float32), DType::Float32);
  EXPECT_EQ(type_of(DType::Float64, DType::Float32), DType::Float64);
  EXPECT_EQ(type_of(DType::BFloat16, DType::Int32), DType::BFloat16);
  EXPECT_EQ(type_of(DType::Int32, DType::UInt8), DType::Int32);
  EXPECT_EQ(type_of(DType::Int64, DType::Bool), DType::Int64);
  // Integer arithmetic stays integer (uint8 wraps as in PyTorch); division is true division.
  EXPECT_EQ(add(full({1}, 250, DType::UInt8), full({1}, 10, DType::UInt8)).to_vector<std::int64_t>()[0], 4);
  EXPECT_EQ(mul(full({1}, 3, DType::Int64), full({1}, -7, DType::Int32)).to_vector<std::int64_t>()[0], -21);
  const Tensor q = div(full({1}, 7, DType::Int64), full({1}, 2, DType::Int64));
  EXPECT_EQ(q.dtype(), DType::Float32);
  EXPECT_EQ(q.item<float>(), 3.5f);
  EXPECT_EQ(exp(zeros({1}, DType::Int32)).dtype(), DType::Float32);
  EXPECT_EQ(neg(full({1}, 5, DType::Int32)).to_vector<std::int32_t>()[0], -5);
}

TEST(Matmul, MatchesNaiveProductIncludingTransposedViews) {
  const Tensor a = random_tensor({7, 5}, 7);
  const Tensor b = random_tensor({5, 3}, 8);
  const auto ref = naive_matmul(a.to_vector<float>(), b.to_vector<float>(), 7, 5, 3);
  expect_all_near(matmul(a, b).to_vector<float>(), ref, 1e-5f);
  const Tensor at = a.t().contiguous().t();  // same values, column-major layout
  const Tensor bt = b.t().contiguous().t();
  expect_all_near(matmul(at, bt).to_vector<float>(), ref, 1e-5f);
  const Tensor sliced = random_tensor({7, 9}, 9).slice(1, 2, 7);  // row stride 9
  expect_all_near(matmul(sliced, b).to_vector<float>(),
                  naive_matmul(sliced.contiguous().to_vector<float>(), b.to_vector<float>(), 7, 5, 3), 1e-5f);
  // Two operands GEMM cannot read in place (broadcast rows): each is copied, and both copies
  // live until the product has run (the first one freed early could be the second's block).
  const Tensor row_a = random_tensor({1, 4}, 10), row_b = random_tensor({1, 4}, 11);
  const Tensor ea = row_a.expand({4, 4}), eb = row_b.expand({4, 4});
  expect_all_near(matmul(ea, eb).to_vector<float>(),
                  naive_matmul(ea.contiguous().to_vector<float>(), eb.contiguous().to_vector<float>(), 4, 4, 4), 1e-5f);
  expect_error_mentions<ShapeError>([&] { matmul(a, a); }, {"matmul", "[7, 5]"});
  expect_error_mentions<ShapeError>([&] { matmul(zeros({2, 3, 4}), b); }, {"2-D"});
}

TEST(Linear, AddsBiasAndFusesRelu) {
  const Tensor x = random_tensor({6, 4}, 10);
  const Tensor w = random_tensor({3, 4}, 11);
  const Tensor bias = random_tensor({3}, 12);
  auto ref = naive_matmul(x.to_vector<float>(), w.t().contiguous().to_vector<float>(), 6, 4, 3);
  const auto bv = bias.to_vector<float>();
  for (std::size_t i = 0; i < ref.size(); ++i) ref[i] += bv[i % 3];
  expect_all_near(linear(x, w, bias).to_vector<float>(), ref);
  for (float& v : ref) v = std::max(v, 0.0f);
  expect_all_near(linear_relu(x, w, bias).to_vector<float>(), ref);
  expect_error_mentions<ShapeError>(
      [] {
        linear(zeros({64, 28, 28}), zeros({256, 784}));
      },
      {"[64, 28, 28]", "Flatten", "784"});
  expect_error_mentions<ShapeError>([] { linear(zeros({64, 100}), zeros({256, 784})); }, {"100", "784"});
  expect_error_mentions<ShapeError>([] { linear(zeros({2, 4}), zeros({3, 4}), zeros({4})); }, {"bias", "[3]"});
}

TEST(Reductions, SumAndMeanOverAnyDims) {
  const Tensor t = random_tensor({2, 3, 4}, 13);
  const auto v = t.to_vector<float>();
  auto at = [&](int i, int j, int k) { return v[static_cast<std::size_t>(i * 12 + j * 4 + k)]; };
  std::vector<float> over1, over02;
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) over1.push_back(at(i, 0, k) + at(i, 1, k) + at(i, 2, k));
  for (int j = 0; j < 3; ++j) {
    float s = 0;
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) s += at(i, j, k);
    over02.push_back(s);
  }
  expect_all_near(sum(t, {1}).to_vector<float>(), over1);
  EXPECT_EQ(sum(t, {1}, true).shape(), (Shape{2, 1, 4}));
  expect_all_near(sum(t, {0, 2}).to_vector<float>(), over02);  // not one block: permuted path
  expect_all_near(sum(t, {-1, 0}).to_vector<float>(), over02);
  const float total = std::accumulate(v.begin(), v.end(), 0.0f);
  EXPECT_NEAR(sum(t).item<float>(), total, 1e-5);
  EXPECT_NEAR(mean(t).item<float>(), total / 24.0f, 1e-6);
  expect_all_near(mean(t, {1}).to_vector<float>(), [&] {
    auto r = over1;
    for (float& x : r) x /= 3.0f;
    return r;
  }());
  EXPECT_EQ(sum(from_vector<bool>({true, false, true}, {3})).item<std::int64_t>(), 2);
  EXPECT_THROW(sum(t, {1, 1}), ShapeError);
  EXPECT_THROW(sum(t, {3}), ShapeError);
}

TEST(Reductions, ArgmaxPicksTheFirstMaximum) {
  const Tensor t = from_vector<float>({1, 5, 5, 2, 9, 0}, {2, 3});
  EXPECT_EQ(argmax(t, 1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 1}));
  EXPECT_EQ(argmax(t, 0).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 1, 0}));
  EXPECT_EQ(argmax(from_vector<float>({3, 7, 7, 7}, {4}), 0).item<std::int64_t>(), 1);
  EXPECT_EQ(argmax(t, 1, true).shape(), (Shape{2, 1}));
}

TEST(Comparison, EqBroadcastsAndAcceptsIntegers) {
  EXPECT_EQ(eq(from_vector<std::int64_t>({1, 2, 3}, {3}), from_vector<std::int64_t>({1, 0, 3}, {3})).to_vector<bool>(),
            (std::vector<bool>{true, false, true}));
  EXPECT_EQ(eq(from_vector<float>({1, 2, 1, 2}, {2, 2}), from_vector<float>({1, 2}, {2})).to_vector<bool>(),
            (std::vector<bool>{true, true, true, true}));
  EXPECT_EQ(eq(from_vector<float>({2}, {1}), from_vector<std::int64_t>({2}, {1})).to_vector<bool>(),
            (std::vector<bool>{true}));
}

TEST(Softmax, LogSoftmaxIsNormalisedAlongAnyDim) {
  const Tensor t = random_tensor({3, 5}, 14);
  for (std::int64_t dim : {0, 1}) {
    const auto p = softmax(t, dim).to_vector<float>();
    const auto lp = log_softmax(t, dim).to_vector<float>();
    for (std::size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(std::log(p[i]), lp[i], 1e-5);
    const auto sums = sum(softmax(t, dim), {dim}).to_vector<float>();
    for (float s : sums) EXPECT_NEAR(s, 1.0f, 1e-5);
  }
  // Stable for large logits.
  const auto big = log_softmax(from_vector<float>({1000.0f, 0.0f}, {1, 2}), 1).to_vector<float>();
  EXPECT_NEAR(big[0], 0.0f, 1e-6);
  EXPECT_NEAR(big[1], -1000.0f, 1e-3);
}

TEST(Losses, CrossEntropyMatchesTheDefinition) {
  const Tensor logits = random_tensor({4, 10}, 15);
  const Tensor targets = from_vector<std::int64_t>({3, 0, 9, 3}, {4});
  const auto lp = log_softmax(logits, 1).to_vector<float>();
  const double expected = -(lp[3] + lp[10] + lp[29] + lp[33]) / 4.0;
  EXPECT_NEAR(cross_entropy(logits, targets).item<double>(), expected, 1e-5);
  expect_error_mentions<ValueError>(
      [&] {
        cross_entropy(logits, from_vector<std::int64_t>({3, 0, 10, 3}, {4}));
      },
      {"target 10", "10 classes"});
  expect_error_mentions<DTypeError>([&] { cross_entropy(logits, zeros({4})); }, {"int64"});
  expect_error_mentions<ShapeError>([&] { cross_entropy(logits, zeros({5}, DType::Int64)); }, {"[4]", "[5]"});
}

TEST(Losses, MseIsTheMeanSquaredDifference) {
  const Tensor a = from_vector<float>({1, 2, 3}, {3});
  const Tensor b = from_vector<float>({1, 0, 6}, {3});
  EXPECT_NEAR(mse_loss(a, b).item<float>(), (0.0f + 4.0f + 9.0f) / 3.0f, 1e-6);
  EXPECT_THROW(mse_loss(a, zeros({2})), ShapeError);
}

TEST(InPlace, AddAndCopyRespectAutogradAndShapes) {
  Tensor a = ones({2, 3});
  add_(a, from_vector<float>({1, 2, 3}, {3}));
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{2, 3, 4, 2, 3, 4}));
  Tensor leaf = zeros({2}).requires_grad_();
  EXPECT_THROW(add_(leaf, ones({2})), ValueError);
  Tensor dst = zeros({3, 2});
  Tensor view = dst.t();
  copy_(view, from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  EXPECT_EQ(dst.to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_THROW(copy_(dst, zeros({2})), ShapeError);
}

TEST(Dropout, ScalesKeptValuesAndIsIdentityInEval) {
  Generator g(3);
  const Tensor x = ones({10000});
  const auto y = dropout(x, 0.25, true, g).to_vector<float>();
  int kept = 0;
  for (float v : y) {
    ASSERT_TRUE(v == 0.0f || std::abs(v - 1.0f / 0.75f) < 1e-6f);
    kept += v != 0.0f;
  }
  EXPECT_NEAR(kept / 10000.0, 0.75, 0.02);
  EXPECT_EQ(dropout(x, 0.25, false, g).raw_data(), x.raw_data());
  EXPECT_THROW(dropout(x, 1.5, true, g), ValueError);
}

// Random123's known answer for philox4x32_10 with a zero counter and key.
TEST(Dropout, PhiloxMatchesTheReferenceGenerator) {
  EXPECT_EQ(philox4x32(0, 0), (std::array<std::uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
}

// The mask comes from (seed, a counter on the device): the same seed gives the same masks, each
// call a new one, a re-seed starts over, and the simulated device draws what the CPU draws.
TEST(Dropout, MasksFollowTheSeedAndTheCounterOnAnyDevice) {
  const Tensor x = ones({1001});
  Generator g(11), same(11), other(12);
  const auto first = dropout(x, 0.5, true, g).to_vector<float>();
  const auto second = dropout(x, 0.5, true, g).to_vector<float>();
  EXPECT_NE(first, second);
  EXPECT_EQ(dropout(x, 0.5, true, same).to_vector<float>(), first);
  EXPECT_NE(dropout(x, 0.5, true, other).to_vector<float>(), first);
  g.manual_seed(11);
  EXPECT_EQ(dropout(x, 0.5, true, g).to_vector<float>(), first);
  Generator on_sim(11);
  EXPECT_EQ(dropout(x.to(Device("sim:0")), 0.5, true, on_sim).to_vector<float>(), first);
  // In the input's dtype, with the scale rounded once.
  Generator half(11);
  const auto in_bf16 = dropout(x.to(DType::BFloat16), 0.5, true, half).to(DType::Float32).to_vector<float>();
  EXPECT_EQ(in_bf16, first);
}

TEST(Elementwise, ReviewedEdgesMatchPyTorch) {
  const float nan = std::nanf("");
  EXPECT_TRUE(std::isnan(relu(from_vector<float>({nan, -1.0f}, {2})).to_vector<float>()[0]));  // NaN stays NaN
  EXPECT_EQ(sum(zeros({0, 2, 0}), {0, 2}).to_vector<float>(), (std::vector<float>{0.0f, 0.0f}));
  const std::int64_t big = (std::int64_t{1} << 53);
  EXPECT_EQ(argmax(from_vector<std::int64_t>({big, big + 1}, {2}), 0).item<std::int64_t>(),
            1);  // exact, not via double
  // A 0-dim operand gives way to a dimensioned one of its category (PyTorch's result type).
  EXPECT_EQ(add(ones({2}, DType::BFloat16), scalar_tensor(1.0)).dtype(), DType::BFloat16);
  EXPECT_EQ(mul(ones({2}), scalar_tensor(2.0, DType::Float64)).dtype(), DType::Float32);
  EXPECT_EQ(add(ones({2}, DType::Int64), scalar_tensor(0.5)).dtype(), DType::Float32);
  // In place into a lower type of the same category: computed in the result type, rounded once.
  Tensor h = full({1}, 1.0, DType::BFloat16);
  add_(h, full({1}, 1.0 / 512, DType::Float32));
  EXPECT_EQ(h.item<float>(), 1.0f);  // 1 + 2^-9 rounds to 1 in bfloat16 (8 significant bits)
  Tensor i = zeros({1}, DType::Int64);
  EXPECT_THROW(add_(i, full({1}, 0.5)), DTypeError);
}

TEST(Reductions, MeanOf16BitTypesRoundsOnce) {
  // bfloat16 values (found by search) whose float32 sum, 3.0390625, is not a bfloat16: rounding
  // it first (to 3.03125) and then scaling gives 1.0078125; PyTorch's single rounding of
  // 3.0390625 * (1/3) gives 1.015625.
  const Tensor x = from_vector<float>({1.0f, 1.0078125f, 1.03125f}, {3}).to(DType::BFloat16);
  EXPECT_EQ(mean(x).dtype(), DType::BFloat16);
  const float once = mean(x).item<float>();
  EXPECT_EQ(once, 1.015625f);
}
