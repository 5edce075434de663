// Finite-difference gradient checks (Flashlight's jacobianTestImpl, ggml's grad mode): the
// analytic gradient of L = sum(f(inputs) * w) for a fixed random w is compared with central
// differences of L, evaluated in double on the host from f's float32 outputs.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "accel/autograd/grad_mode.h"
#include "accel/ops/ops.h"

namespace accel::testing {

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

inline double weighted_sum(const Tensor& out, const std::vector<float>& w) {
  const std::vector<float> values = out.to_vector<float>();
  double total = 0.0;
  for (std::size_t i = 0; i < values.size(); ++i) total += static_cast<double>(values[i]) * w[i];
  return total;
}

// Checks every float32 input; non-float inputs (targets) are passed through unchanged.
inline void expect_gradients_match(const std::string& name, const TensorFn& f, std::vector<Tensor> inputs,
                                   double eps = 1e-3, double tolerance = 1e-2) {
  Generator gen(1234);
  std::vector<Tensor> leaves;
  for (Tensor& t : inputs) {
    Tensor leaf = t.detach().clone();
    if (leaf.dtype() == DType::Float32) leaf.requires_grad_();
    leaves.push_back(leaf);
  }
  const Tensor out = f(leaves);
  std::vector<float> w(static_cast<std::size_t>(out.numel()));
  for (float& v : w) v = gen.uniform() * 2.0f - 1.0f;
  const Tensor loss = sum(mul(out, from_vector(w, out.shape())));
  loss.backward();

  for (std::size_t i = 0; i < leaves.size(); ++i) {
    if (leaves[i].dtype() != DType::Float32) continue;
    const Tensor analytic_tensor = leaves[i].grad();
    ASSERT_TRUE(analytic_tensor.defined()) << name << ": input " << i << " got no gradient";
    ASSERT_EQ(analytic_tensor.shape(), leaves[i].shape()) << name << ": gradient shape of input " << i;
    const std::vector<float> analytic = analytic_tensor.to_vector<float>();
    std::vector<float> base = leaves[i].to_vector<float>();
    for (std::size_t j = 0; j < base.size(); ++j) {
      const auto evaluate = [&](float delta) {
        autograd::NoGradGuard no_grad;
        std::vector<Tensor> shifted = leaves;
        std::vector<float> values = base;
        values[j] += delta;
        shifted[i] = from_vector(values, leaves[i].shape());
        return weighted_sum(f(shifted), w);
      };
      const double numeric = (evaluate(static_cast<float>(eps)) - evaluate(static_cast<float>(-eps))) / (2.0 * eps);
      const double scale = std::max(1.0, std::abs(numeric));
      EXPECT_NEAR(analytic[j], numeric, tolerance * scale)
          << name << ": d/d input " << i << " element " << j << " (analytic vs finite difference)";
    }
  }
}

}  // namespace accel::testing
