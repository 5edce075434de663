// Model's compiled state (what compile() decided), shared by model.cpp and model_xla.cpp.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "accel/amp/grad_scaler.h"
#include "accel/ops/autocast.h"
#include "accel/ops/ops.h"
#include "accel/train/captured_step.h"
#include "accel/train/model.h"

namespace accel::train {

// What compile() decided: the optimizer, the loss and how its targets look, the metrics.
struct Model::Compiled {
  enum class Targets { ClassIndices, Distributions, Values };
  std::shared_ptr<optim::Optimizer> optimizer;
  LossFn loss;
  std::string loss_name;
  bool loss_by_name = false;  // an XLA program emits the loss it names; a LossFn is opaque
  Targets targets = Targets::Values;
  bool accuracy = false;
  std::optional<DType> amp;
  bool capture = true;
  int accumulate = 1;
  std::unique_ptr<amp::GradScaler> scaler;
  CapturedStep* active_step = nullptr;  // fit's, while it runs (set_learning_rate recaptures it)

  amp::Autocast autocast(Device device) const {
    return amp::Autocast(device.type, amp.value_or(DType::BFloat16), amp.has_value());
  }
  // Correct predictions in a batch, an int64 device scalar.
  Tensor correct(const Tensor& output, const Tensor& target) const {
    return sum(eq(argmax(output, 1), targets == Targets::ClassIndices ? target : argmax(target, 1)));
  }
};

}  // namespace accel::train
