// A checkpoint written by accel loads in PyTorch (Debian's python3-torch, with safetensors from
// PyPI in the test venv: scripts/test-venv.sh, which `make test` runs) and gives the same
// predictions: the seed's model, trained one epoch by `accel train --save`, on 100 Fashion-MNIST
// test images, logits within 1e-5 of accel's. PyTorch's own writer's file (the logits) is read
// back by accel's reader, so both directions are checked.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "../support/command.h"
#include "accel/data/fashion_mnist.h"
#include "accel/nn/layers.h"
#include "accel/ops/ops.h"
#include "accel/tensor/safetensors.h"

using namespace accel;
namespace fs = std::filesystem;

TEST(SafetensorsTorch, AnAccelCheckpointLoadsInPyTorchAndPredictsTheSame) {
  const std::string python = ACCEL_TEST_PYTHON;
  ASSERT_TRUE(fs::exists(python)) << python
                                  << " is missing: the test venv holds safetensors for Debian's PyTorch; "
                                     "scripts/test-venv.sh makes it (make test runs it)";
  const fs::path dir = fs::temp_directory_path() / ("accel_safetensors_torch_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto trained = accel::testing::run_command(std::string(ACCEL_CLI_PATH) +
                                                   " train --epochs 1 --batch-size 256 --threads 1 --save " +
                                                   (dir / "weights.safetensors").string());
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_NE(trained.output.find("weights: " + (dir / "weights.safetensors").string()), std::string::npos);

  // A folder that does not exist is found out before the training it would lose.
  const auto nowhere = accel::testing::run_command(std::string(ACCEL_CLI_PATH) + " train --epochs 1 --save " +
                                                   (dir / "missing" / "w.safetensors").string());
  EXPECT_NE(nowhere.status, 0);
  EXPECT_NE(nowhere.output.find("the folder " + (dir / "missing").string() + " does not exist"), std::string::npos)
      << nowhere.output;
  EXPECT_EQ(nowhere.output.find("epoch 1"), std::string::npos) << nowhere.output;

  const SafetensorsFile weights = load_safetensors((dir / "weights.safetensors").string());
  EXPECT_EQ(weights.metadata.at("format"), "pt");
  nn::Sequential model(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 10));
  model.load_state_dict(weights.tensors);
  const auto test_set = data::load_fashion_mnist("", false);
  const Tensor images = test_set.images.slice(0, 0, 100).to(DType::Float32).reshape({100, 784}) * (1.0 / 255.0);
  save_safetensors((dir / "images.safetensors").string(), {{"images", images}});
  const std::vector<float> ours = model.forward(images).to_vector<float>();

  const auto reference =
      accel::testing::run_command(python + " " + ACCEL_SOURCE_DIR + "/tests/parity/torch_safetensors_reference.py " +
                                  (dir / "weights.safetensors").string() + " " + (dir / "images.safetensors").string() +
                                  " " + (dir / "logits.safetensors").string());
  ASSERT_EQ(reference.status, 0) << reference.output;
  std::cout << reference.output;
  const Tensor theirs = load_safetensors((dir / "logits.safetensors").string()).tensors.at("logits");
  ASSERT_EQ(theirs.shape(), Shape({100, 10}));
  double worst = 0;
  const std::vector<float> values = theirs.to_vector<float>();
  for (std::size_t i = 0; i < values.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(values[i]) - ours[i]));
  EXPECT_LE(worst, 1e-5);
  fs::remove_all(dir);
}
