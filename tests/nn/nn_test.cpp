#include <gtest/gtest.h>

#include <cmath>

#include "accel/autograd/grad_mode.h"
#include "accel/autograd/node.h"
#include "accel/backends/kernel_recording.h"
#include "accel/nn/layers.h"
#include "accel/ops/ops.h"

using namespace accel;

TEST(Linear, PyTorchDefaultInitBounds) {
  Generator g(1);
  nn::Linear layer(784, 256, true, g);
  EXPECT_EQ(layer.weight.shape(), (Shape{256, 784}));
  EXPECT_EQ(layer.bias.shape(), (Shape{256}));
  const float bound = 1.0f / std::sqrt(784.0f);
  float lo = 1, hi = -1;
  for (float v : layer.weight.to_vector<float>()) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GE(lo, -bound);
  EXPECT_LE(hi, bound);
  EXPECT_LT(lo, -0.9f * bound);  // the whole range is used
  EXPECT_GT(hi, 0.9f * bound);
  EXPECT_TRUE(layer.weight.requires_grad());
  EXPECT_THROW(nn::Linear(0, 3), ValueError);
}

TEST(Sequential, NamesParametersAsPyTorchDoes) {
  nn::Sequential model(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 10));
  const auto named = model.named_parameters();
  ASSERT_EQ(named.size(), 4u);
  EXPECT_EQ(named[0].first, "0.weight");
  EXPECT_EQ(named[1].first, "0.bias");
  EXPECT_EQ(named[2].first, "2.weight");
  EXPECT_EQ(named[3].first, "2.bias");
  std::int64_t count = 0;
  for (const Tensor& p : model.parameters()) count += p.numel();
  EXPECT_EQ(count, 203530);  // the seed model's parameter count
  EXPECT_NE(model.to_string().find("(1): ReLU()"), std::string::npos);
}

TEST(Sequential, FusedLinearReluEqualsTheLayersOneByOne) {
  Generator g(2);
  nn::Sequential model(nn::Linear(8, 6, true, g), nn::ReLU(), nn::Linear(6, 3, true, g));
  const Tensor x = randn({5, 8}, g);
  const auto fused = model(x).to_vector<float>();
  Tensor h = x;
  for (std::size_t i = 0; i < model.size(); ++i) h = model[i](h);
  EXPECT_EQ(fused, h.to_vector<float>());
}

// Linear, ReLU, Linear, ReLU, Linear is one mlp node; on sim its ReLU gradients go through the
// masks in the GEMMs. Either way the output and every gradient equal the layers one by one.
TEST(Sequential, ARunOfLayersIsOneNodeWithTheLayersOneByOnesGradients) {
  for (Device device : {kCPU, Device("sim:0")}) {
    Generator g(4);
    nn::Sequential model(nn::Linear(8, 6, true, g), nn::ReLU(), nn::Linear(6, 5, false, g), nn::ReLU(),
                         nn::Linear(5, 3, true, g));
    model.to(device);
    const Tensor x = randn({7, 8}, g).to(device), weights = randn({7, 3}, g).to(device);
    const Tensor fused = model(x);
    EXPECT_EQ(fused.grad_fn()->name(), "MlpBackward");
    sum(mul(fused, weights)).backward();
    std::vector<std::vector<float>> fused_grads;
    for (const Tensor& p : model.parameters()) fused_grads.push_back(p.grad().to(kCPU).to_vector<float>());
    model.zero_grad();
    Tensor h = x;
    for (std::size_t i = 0; i < model.size(); ++i) h = model[i](h);
    EXPECT_EQ(fused.to(kCPU).to_vector<float>(), h.to(kCPU).to_vector<float>()) << device.to_string();
    sum(mul(h, weights)).backward();
    const auto params = model.parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      EXPECT_EQ(fused_grads[i], params[i].grad().to(kCPU).to_vector<float>())
          << device.to_string() << ", parameter " << i;
    }
  }
}

// What the seed model's step asks of the backend: on sim (as on a GPU) the ReLU's gradient is in
// the second layer's input-gradient GEMM, so no relu_backward call is made; the CPU makes one.
TEST(Sequential, TheSeedModelsBackwardCallsNoReluBackwardWhereTheMaskIsFused) {
  for (Device device : {kCPU, Device("sim:0")}) {
    Generator g(5);
    nn::Sequential model(nn::Linear(784, 256, true, g), nn::ReLU(), nn::Linear(256, 10, true, g));
    model.to(device);
    const Tensor x = rand({64, 784}, g).to(device);
    const Tensor targets = from_vector<std::int64_t>(std::vector<std::int64_t>(64, 3), {64}).to(device);
    KernelRecording recording(device);
    {
      const CaptureScope capture(recording);
      cross_entropy(model(x), targets).backward();
    }
    std::string calls;
    int relu_backwards = 0, gemms = 0;
    for (const char* name : recording.call_names()) {
      calls += std::string(name) + " ";
      relu_backwards += std::string(name) == "relu_backward";
      gemms += std::string(name) == "gemm";
    }
    EXPECT_EQ(relu_backwards, device.type == DeviceType::CPU ? 1 : 0) << device.to_string() << ": " << calls;
    EXPECT_EQ(gemms, 5) << device.to_string() << ": " << calls;  // two forward, three backward
  }
}

TEST(Module, StateDictRoundTripAndErrors) {
  Generator g(3);
  nn::Sequential a(nn::Linear(4, 3, true, g), nn::ReLU(), nn::Linear(3, 2, true, g));
  nn::Sequential b(nn::Linear(4, 3, true, g), nn::ReLU(), nn::Linear(3, 2, true, g));
  const Tensor x = randn({2, 4}, g);
  EXPECT_NE(a(x).to_vector<float>(), b(x).to_vector<float>());
  b.load_state_dict(a.state_dict());
  EXPECT_EQ(a(x).to_vector<float>(), b(x).to_vector<float>());
  auto state = a.state_dict();
  state["0.weight"] = zeros({3, 5});
  EXPECT_THROW(b.load_state_dict(state), ShapeError);
  state.erase("0.weight");
  EXPECT_THROW(b.load_state_dict(state), ValueError);
  auto extra = a.state_dict();
  extra["9.weight"] = zeros({1});
  EXPECT_THROW(b.load_state_dict(extra), ValueError);
  EXPECT_NO_THROW(b.load_state_dict(extra, false));
}

TEST(Module, TrainEvalReachesChildrenAndDropoutObeys) {
  Generator g(4);
  nn::Sequential model(nn::Flatten(), nn::Dropout(0.5, g));
  const Tensor x = ones({2, 3, 4});
  EXPECT_EQ(model(x).shape(), (Shape{2, 12}));
  model.eval();
  EXPECT_FALSE(model[1].is_training());
  EXPECT_EQ(model(x).to_vector<float>(), std::vector<float>(24, 1.0f));
  model.train();
  const auto dropped = model(x).to_vector<float>();
  EXPECT_NE(dropped, std::vector<float>(24, 1.0f));
}

TEST(Module, ToCudaWithoutADeviceFailsCleanlyAndKeepsTheModel) {
  nn::Sequential model(nn::Linear(4, 2));
  const auto before = model.parameters()[0].to_vector<float>();
  EXPECT_THROW(model.to(Device("cuda")), DeviceError);
  EXPECT_EQ(model.parameters()[0].device(), kCPU);
  EXPECT_EQ(model.parameters()[0].to_vector<float>(), before);
}

TEST(Module, ZeroGradDropsGradients) {
  nn::Linear layer(3, 2);
  sum(layer(ones({1, 3}))).backward();
  EXPECT_TRUE(layer.weight.grad().defined());
  layer.zero_grad();
  EXPECT_FALSE(layer.weight.grad().defined());
}
