// amp::GradScaler against PyTorch's GradScaler on the same sequence (tests/amp/
// grad_scaler_reference.py: live when a PyTorch >= 2.3 is at hand, else its recorded output),
// and the rules one by one: a forced inf skips the step and halves the scale, 2000 clean steps
// double it, misuse is a typed error.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "../support/command.h"
#include "accel/amp/grad_scaler.h"
#include "accel/ops/ops.h"
#include "accel/optim/optimizer.h"

using namespace accel;

namespace {

const std::string kScript = std::string(ACCEL_SOURCE_DIR) + "/tests/amp/grad_scaler_reference.py";

// PyTorch's records: live from the bench venv's PyTorch when it is there, else the file
// recorded from PyTorch 2.15.
nlohmann::json pytorch_records(std::string* source) {
  const std::string python = std::string(ACCEL_SOURCE_DIR) + "/build/bench-venv/bin/python";  // bench/setup-venv.sh
  if (std::filesystem::exists(python)) {
    const auto run = accel::testing::run_command("'" + python + "' '" + kScript + "' 2>/dev/null");
    if (run.status == 0) {
      *source = "live, " + python;
      return nlohmann::json::parse(run.output);
    }
  }
  std::ifstream in(std::string(ACCEL_SOURCE_DIR) + "/tests/amp/grad_scaler_reference.json");
  *source = "recorded";
  return nlohmann::json::parse(in);
}

Tensor inputs(int k) {
  const float last = (k == 4 || k == 5) ? 1e34f : static_cast<float>(0.05 * k);
  return from_vector<float>({static_cast<float>(0.1 * (k + 1)), -0.2f, 0.3f, last}, {4});
}

// One parameter with gradient `g` (already "scaled") for the rule tests.
struct OneParam {
  Tensor p = from_vector<float>({1.0f, 2.0f}, {2}).requires_grad_();
  optim::SGD sgd{{p}, {.lr = 0.5}};
  void grad(float a, float b) { p.set_grad(from_vector<float>({a, b}, {2})); }
};

}  // namespace

TEST(GradScaler, MatchesPyTorchsGradScalerStepForStep) {
  std::string source;
  const nlohmann::json reference = pytorch_records(&source);
  std::cout << "PyTorch " << reference.at("torch").get<std::string>() << " (" << source << ")\n";
  Tensor p = from_vector<float>({0.5f, -1.0f, 2.0f, 0.25f}, {4}).requires_grad_();
  optim::Adam adam({p}, {.lr = 0.01});
  amp::GradScaler scaler(kCPU, {.init_scale = 65536.0, .growth_interval = 3});
  const auto& steps = reference.at("steps");
  ASSERT_EQ(steps.size(), 12u);
  int skipped = 0;
  for (int k = 0; k < 12; ++k) {
    const auto& expected = steps[static_cast<std::size_t>(k)];
    adam.zero_grad();
    scaler.scale(sum(mul(p, inputs(k)))).backward();
    const bool stepped = scaler.step(adam) == amp::ScaledStep::Taken;  // unpacked: decided on the host
    scaler.update();
    skipped += stepped ? 0 : 1;
    EXPECT_EQ(stepped, expected.at("stepped").get<bool>()) << "step " << k;
    EXPECT_EQ(scaler.get_scale(), expected.at("scale").get<double>()) << "step " << k;
    EXPECT_EQ(scaler.growth_tracker(), expected.at("growth_tracker").get<int>()) << "step " << k;
    const auto params = p.to_vector<float>();
    for (std::size_t i = 0; i < 4; ++i) {
      const double want = expected.at("params")[i].get<double>();
      EXPECT_NEAR(params[i], want, 2e-7 * std::max(1.0, std::abs(want))) << "step " << k << " element " << i;
    }
  }
  EXPECT_EQ(skipped, 2);  // the overflow really happened on both sides
}

TEST(GradScaler, AnInfOrNanGradientSkipsTheStepAndHalvesTheScale) {
  for (const float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    OneParam m;
    amp::GradScaler scaler;
    EXPECT_EQ(scaler.get_scale(), 65536.0);
    m.grad(65536.0f, bad);
    EXPECT_EQ(scaler.step(m.sgd), amp::ScaledStep::Skipped);
    scaler.update();
    EXPECT_EQ(m.p.to_vector<float>(), (std::vector<float>{1.0f, 2.0f}));  // untouched
    EXPECT_EQ(scaler.get_scale(), 32768.0);
    EXPECT_EQ(scaler.growth_tracker(), 0);
  }
}

TEST(GradScaler, TwoThousandCleanStepsDoubleTheScaleAndGradientsArriveUnscaled) {
  OneParam m;
  amp::GradScaler scaler;
  m.grad(2.0f * 65536.0f, -65536.0f);
  scaler.unscale_(m.sgd);
  EXPECT_EQ(m.p.grad().to_vector<float>(), (std::vector<float>{2.0f, -1.0f}));  // what the optimizer sees
  EXPECT_EQ(scaler.step(m.sgd), amp::ScaledStep::Taken);
  scaler.update();
  for (int i = 1; i < 1999; ++i) {
    m.grad(0.0f, 0.0f);
    EXPECT_EQ(scaler.step(m.sgd), amp::ScaledStep::Taken);
    scaler.update();
  }
  EXPECT_EQ(scaler.get_scale(), 65536.0);
  EXPECT_EQ(scaler.growth_tracker(), 1999);
  m.grad(0.0f, 0.0f);
  scaler.step(m.sgd);
  scaler.update();  // the 2000th clean step in a row
  EXPECT_EQ(scaler.get_scale(), 131072.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(GradScaler, GradientAccumulationScalesEveryMicroBatchAndStepsOnce) {
  Tensor p = from_vector<float>({1.0f}, {1}).requires_grad_();
  optim::SGD sgd({p}, {.lr = 1.0});
  amp::GradScaler scaler;
  for (int micro = 0; micro < 4; ++micro) scaler.scale(mul(sum(p), 0.25)).backward();
  EXPECT_EQ(scaler.step(sgd), amp::ScaledStep::Taken);
  scaler.update();
  EXPECT_FLOAT_EQ(p.item<float>(), 0.0f);  // 1 - lr * (4 x 0.25)
}

TEST(GradScaler, MisuseIsATypedErrorAndStateRoundTrips) {
  OneParam m;
  amp::GradScaler scaler(kCPU, {.growth_interval = 5});
  EXPECT_THROW(scaler.update(), ValueError);  // nothing recorded yet
  m.grad(1.0f, 1.0f);
  scaler.unscale_(m.sgd);
  EXPECT_THROW(scaler.unscale_(m.sgd), ValueError);
  scaler.step(m.sgd);
  EXPECT_THROW(scaler.step(m.sgd), ValueError);
  scaler.update();
  EXPECT_THROW(scaler.scale(zeros({}, DType::Int64)), DTypeError);
  EXPECT_THROW(scaler.scale(zeros({}, DType::Float32, Device("sim:0"))), DeviceError);
  EXPECT_THROW(amp::GradScaler(kCPU, {.growth_factor = 0.5}), ValueError);
  EXPECT_THROW(amp::GradScaler(kCPU, {.growth_interval = 0}), ValueError);

  auto state = scaler.state_dict();
  EXPECT_EQ(state.at("_growth_tracker").item<std::int64_t>(), 1);
  amp::GradScaler resumed;
  resumed.load_state_dict(state);
  EXPECT_EQ(resumed.get_scale(), 65536.0);
  EXPECT_EQ(resumed.growth_tracker(), 1);
  EXPECT_EQ(resumed.options().growth_interval, 5);
  state["_growth_tracker"] = scalar_tensor(7, DType::Int64);  // past the interval
  EXPECT_THROW(resumed.load_state_dict(state), ValueError);
  EXPECT_EQ(resumed.growth_tracker(), 1);

  amp::GradScaler off(kCPU, {.enabled = false});
  const Tensor loss = full({}, 3.0);
  EXPECT_EQ(off.scale(loss).item<float>(), 3.0f);
  m.grad(1.0f, 1.0f);
  EXPECT_EQ(off.step(m.sgd), amp::ScaledStep::Taken);
}
