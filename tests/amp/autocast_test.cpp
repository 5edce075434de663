// amp::Autocast: which ops run in which dtype (PyTorch's lists), gradients that reach float32
// parameters in float32, backward in the forward's dtypes, and the seed workflow's accuracy
// with --amp bf16 against float32.
#include <gtest/gtest.h>

#include <cmath>

#include "accel/nn/layers.h"
#include "accel/ops/autocast.h"
#include "accel/ops/ops.h"
#include "accel/train/seed_trainer.h"

using namespace accel;

namespace {
struct Mlp {
  Generator init{3};
  nn::Sequential model{nn::Linear(12, 8, true, init), nn::ReLU(), nn::Linear(8, 4, true, init)};
  Tensor x = randn({6, 12}, init);
  Tensor y = from_vector<std::int64_t>({0, 3, 1, 2, 2, 0}, {6});
};
}  // namespace

TEST(Autocast, GemmsRunInTheLowTypeAndSoftmaxLossesAndSumsInFloat32) {
  for (DType low : {DType::BFloat16, DType::Float16}) {
    Mlp m;
    amp::Autocast autocast(DeviceType::CPU, low);
    const Tensor logits = m.model(m.x);
    EXPECT_EQ(logits.dtype(), low);
    EXPECT_EQ(matmul(m.x, m.x.t()).dtype(), low);
    EXPECT_EQ(relu(logits).dtype(), low);                       // runs in its input's type
    EXPECT_EQ(add(logits, ones({4})).dtype(), DType::Float32);  // promotion, as without autocast
    EXPECT_EQ(log_softmax(logits, 1).dtype(), DType::Float32);
    EXPECT_EQ(sum(logits).dtype(), DType::Float32);
    EXPECT_EQ(exp(logits).dtype(), DType::Float32);
    EXPECT_EQ(cross_entropy(logits, m.y).dtype(), DType::Float32);
    EXPECT_EQ(mse_loss(logits, zeros({6, 4})).dtype(), DType::Float32);
    EXPECT_EQ(linear(zeros({2, 3}, DType::Float64), zeros({4, 3}, DType::Float64)).dtype(), DType::Float64);
  }
  Mlp m;
  EXPECT_EQ(m.model(m.x).dtype(), DType::Float32);  // the scope restored the state
  {
    amp::Autocast other_device(DeviceType::Sim, DType::BFloat16);
    EXPECT_EQ(m.model(m.x).dtype(), DType::Float32);  // a cpu tensor is not a sim tensor
  }
  {
    amp::Autocast off(DeviceType::CPU, DType::BFloat16, false);
    EXPECT_EQ(m.model(m.x).dtype(), DType::Float32);
  }
  EXPECT_THROW(amp::Autocast(DeviceType::CPU, DType::Float64), DTypeError);
}

TEST(Autocast, Float32ParametersGetFloat32GradientsCloseToTheFloat32Ones) {
  Mlp full, mixed, inside;
  cross_entropy(full.model(full.x), full.y).backward();
  Tensor loss;
  {
    amp::Autocast autocast(DeviceType::CPU, DType::BFloat16);
    loss = cross_entropy(mixed.model(mixed.x), mixed.y);
    // Backward inside the scope runs in the forward's dtypes, as outside it.
    cross_entropy(inside.model(inside.x), inside.y).backward();
  }
  loss.backward();
  const auto p_full = full.model.parameters(), p_mixed = mixed.model.parameters(), p_inside = inside.model.parameters();
  for (std::size_t i = 0; i < p_full.size(); ++i) {
    ASSERT_EQ(p_mixed[i].grad().dtype(), DType::Float32) << i;
    EXPECT_EQ(p_inside[i].grad().to_vector<float>(), p_mixed[i].grad().to_vector<float>()) << i;
    const auto want = p_full[i].grad().to_vector<float>(), got = p_mixed[i].grad().to_vector<float>();
    double scale = 1e-3, worst = 0.0;
    for (float v : want) scale = std::max(scale, static_cast<double>(std::abs(v)));
    for (std::size_t j = 0; j < want.size(); ++j) worst = std::max(worst, std::abs(double(got[j]) - want[j]) / scale);
    EXPECT_LT(worst, 0.05) << "parameter " << i << ": bfloat16 gradients are float32's to a few bf16 roundings";
    EXPECT_GT(worst, 0.0) << "parameter " << i << ": the GEMMs really ran in bfloat16";
  }
}

TEST(Autocast, SeedWorkflowInBfloat16ReachesFloat32sAccuracyAfterFiveEpochs) {
  const auto run = [](const std::string& amp) {
    train::SeedConfig config;
    config.epochs = 5;
    config.threads = 1;
    config.device = "cpu";
    config.amp = amp;
    return train::train_seed_model(config).epochs.back().test_accuracy;
  };
  const double fp32 = run("off"), bf16 = run("bf16");
  std::cout << "test accuracy after 5 epochs: float32 " << fp32 << ", bf16 autocast " << bf16 << "\n";
  EXPECT_GE(bf16, fp32 - 0.005);  // no accuracy lost to bfloat16 (it may land a little higher)
  EXPECT_GE(bf16, 0.87);
  train::SeedConfig bad;
  bad.amp = "fp8";
  EXPECT_THROW(train::train_seed_model(bad), ValueError);
}
