// Learning-rate schedules by epoch, with PyTorch's formulas (torch.optim.lr_scheduler), as
// functions of the epoch alone so that a resumed run gets the same rate as one never stopped.
//
//   optim::StepLR step({.base_lr = 1e-3, .step_size = 10, .gamma = 0.1});
//   optimizer.set_lr(step.lr_at(epoch));          // or train::LearningRateScheduler(step)
#pragma once

namespace accel::optim {

// lr = base_lr * gamma^floor(epoch / step_size)
struct StepLROptions {
  double base_lr = 1e-3;
  int step_size = 1;
  double gamma = 0.1;
};

class StepLR {
 public:
  explicit StepLR(StepLROptions options);  // throws ValueError for step_size < 1, gamma <= 0
  double lr_at(int epoch) const;

 private:
  StepLROptions options_;
};

// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2, for epoch <= t_max,
// and eta_min after it (PyTorch's closed form).
struct CosineAnnealingOptions {
  double base_lr = 1e-3;
  int t_max = 1;
  double eta_min = 0.0;
};

class CosineAnnealingLR {
 public:
  explicit CosineAnnealingLR(CosineAnnealingOptions options);  // throws ValueError for t_max < 1
  double lr_at(int epoch) const;

 private:
  CosineAnnealingOptions options_;
};

}  // namespace accel::optim
