// The seed's training step against float64 PyTorch, teacher-forced: at each of 100 steps the
// reference (tests/parity/torch_step_reference.py, Debian's python3-torch) starts from exactly
// the float32 state accel started that step from (weights, Adam's moments and step count, the
// batch) and computes the loss and every gradient by autograd, and Adam's update of accel's
// gradients by torch.optim.Adam. Each of accel's values must lie within twice the float32
// rounding bound the reference derives for it elementwise (Higham's gamma_K for a reduction
// of K terms in any order, carried through the layers; undecided ReLUs counted fully; Adam's
// few roundings per element). The factor 2 covers the bounds being first order.
//
// Why teacher-forced: 100 free-running steps amplify last-bit differences chaotically (one
// ReLU that flips sign is enough), so a free-running comparison holds on one CPU model and not
// the next. Each step checked from the same state has no such amplification, so the bound is
// a property of float32, not of the CPU, its BLAS or its thread count. The tests at the bottom
// check the check: a missing 1/N in the loss gradient, Adam without bias correction and eps
// inside the sqrt must each fail it, and a correct hand-written Adam must pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "accel/data/dataloader.h"
#include "accel/data/fashion_mnist.h"
#include "accel/nn/layers.h"
#include "accel/optim/optimizer.h"
#include "reference_process.h"

using namespace accel;

namespace {

constexpr int kSteps = 100;
constexpr std::int64_t kBatch = 64;
constexpr double kSafety = 2.0;  // the reference's bounds are first order
constexpr const char* kPython = "/usr/bin/python3";
const std::array<const char*, 4> kNames = {"w1", "b1", "w2", "b2"};

using Params = std::array<std::vector<float>, 4>;

// One step of accel's seed training: the state it started from, what it computed, where it ended.
struct StepRecord {
  std::int64_t step = 0;  // Adam's step count after this step (1-based)
  std::vector<float> x;
  std::vector<std::int64_t> y;
  Params params, exp_avg, exp_avg_sq;
  double loss = 0;
  Params grads;
  Params new_params, new_exp_avg, new_exp_avg_sq;
};

// The seed's model, optimizer and batches, as accel trains them (free-running).
class SeedRun {
 public:
  SeedRun()
      : train_(data::load_fashion_mnist("", true)),
        init_(2024),
        model_(nn::Linear(784, 256, true, init_), nn::ReLU(), nn::Linear(256, 10, true, init_)),
        params_(model_.parameters()),
        optimizer_(params_, {.lr = 1e-3}),
        loader_(train_.images, train_.labels, {.batch_size = kBatch, .shuffle = true, .seed = 7}) {
    model_.pack_parameters();  // as `accel train` runs it: one fused Adam kernel over the arena
  }

  StepRecord next() {
    StepRecord r;
    const data::Batch batch = loader_.batch(static_cast<std::size_t>(index_++));
    r.x = batch.inputs.to_vector<float>();
    r.y = batch.labels.to_vector<std::int64_t>();
    r.params = values([](const Tensor& p) { return p; });
    r.exp_avg = moments(&optim::Adam::exp_avg);
    r.exp_avg_sq = moments(&optim::Adam::exp_avg_sq);
    optimizer_.zero_grad();
    const Tensor loss = criterion_(model_(batch.inputs), batch.labels);
    loss.backward();
    r.loss = loss.item<double>();
    r.grads = values([](const Tensor& p) { return p.grad(); });
    optimizer_.step();
    r.step = optimizer_.step_count(0);
    r.new_params = values([](const Tensor& p) { return p; });
    r.new_exp_avg = moments(&optim::Adam::exp_avg);
    r.new_exp_avg_sq = moments(&optim::Adam::exp_avg_sq);
    return r;
  }

 private:
  Params values(const std::function<Tensor(const Tensor&)>& of) const {
    Params out;
    for (std::size_t i = 0; i < 4; ++i) out[i] = of(params_[i]).to_vector<float>();
    return out;
  }
  Params moments(Tensor (optim::Adam::*moment)(std::size_t) const) const {
    Params out;
    for (std::size_t i = 0; i < 4; ++i) {
      const Tensor t = (optimizer_.*moment)(i);
      out[i] =
          t.defined() ? t.to_vector<float>() : std::vector<float>(static_cast<std::size_t>(params_[i].numel()), 0.f);
    }
    return out;
  }

  data::LabelledImages train_;
  Generator init_;
  nn::Sequential model_;
  std::vector<Tensor> params_;
  optim::Adam optimizer_;
  data::DataLoader loader_;
  nn::CrossEntropyLoss criterion_;
  int index_ = 0;
};

// The worst element of one compared quantity: |accel - torch| / (kSafety * bound).
struct Comparison {
  std::string name;
  double ratio = 0;
  std::size_t index = 0;
  double ours = 0, theirs = 0, bound = 0;
};

struct StepReport {
  std::int64_t step = 0;
  std::int64_t undecided_relus = 0;
  std::vector<Comparison> items;

  bool ok() const {
    return std::all_of(items.begin(), items.end(), [](const Comparison& c) { return c.ratio <= 1.0; });
  }
  double worst(const std::string& prefix) const {
    double w = 0;
    for (const auto& c : items)
      if (c.name.rfind(prefix, 0) == 0) w = std::max(w, c.ratio);
    return w;
  }
  std::string failures() const {
    std::ostringstream out;
    out.precision(9);
    for (const auto& c : items)
      if (!(c.ratio <= 1.0))
        out << "\n  step " << step << " " << c.name << "[" << c.index << "]: accel " << c.ours << ", torch " << c.theirs
            << ", |diff| " << std::abs(c.ours - c.theirs) << " > " << kSafety << " x bound " << c.bound;
    return out.str();
  }
};

Comparison compare(const std::string& name, const std::vector<float>& ours, const std::vector<double>& theirs,
                   const std::vector<double>& bounds) {
  Comparison worst{name};
  for (std::size_t i = 0; i < ours.size(); ++i) {
    const double diff = std::abs(static_cast<double>(ours[i]) - theirs[i]);
    const double ratio = diff == 0 ? 0 : diff / (kSafety * bounds[i]);  // NaN and bound 0 fail
    if (!(ratio <= worst.ratio))
      worst = {name,     std::isnan(ratio) ? std::numeric_limits<double>::infinity() : ratio, i, ours[i], theirs[i],
               bounds[i]};
  }
  return worst;
}

class TorchStepReference {
 public:
  TorchStepReference() : process_({kPython, std::string(ACCEL_SOURCE_DIR) + "/tests/parity/torch_step_reference.py"}) {}

  StepReport check(const StepRecord& r) {
    process_.write_value<std::int64_t>(r.step);
    process_.write_value<std::int64_t>(static_cast<std::int64_t>(r.y.size()));
    process_.write(r.x);
    process_.write(r.y);
    for (const Params* group : {&r.params, &r.exp_avg, &r.exp_avg_sq, &r.grads})
      for (const auto& values : *group) process_.write(values);

    StepReport report;
    report.step = r.step;
    const auto loss = process_.read<double>(2);
    report.undecided_relus = process_.read<std::int64_t>(1)[0];
    report.items.push_back(compare("loss", {static_cast<float>(r.loss)}, {loss[0]}, {loss[1]}));
    for (std::size_t i = 0; i < 4; ++i) {
      const std::size_t n = r.grads[i].size();
      const auto grad = process_.read<double>(n);
      const auto bound = process_.read<double>(n);
      report.items.push_back(compare(std::string("grad ") + kNames[i], r.grads[i], grad, bound));
    }
    for (std::size_t i = 0; i < 4; ++i) {
      const std::size_t n = r.grads[i].size();
      for (const auto& [label, ours] :
           {std::pair{"adam param ", &r.new_params[i]}, std::pair{"adam exp_avg ", &r.new_exp_avg[i]},
            std::pair{"adam exp_avg_sq ", &r.new_exp_avg_sq[i]}}) {
        const auto value = process_.read<double>(n);
        const auto bound = process_.read<double>(n);
        report.items.push_back(compare(std::string(label) + kNames[i], *ours, value, bound));
      }
    }
    return report;
  }

 private:
  accel::testing::ReferenceProcess process_;
};

void require_torch() {
  ASSERT_EQ(std::system((std::string(kPython) + " -c 'import torch' 2>/dev/null").c_str()), 0)
      << "Debian's PyTorch is the reference: apt-get install python3-torch (make test installs it)";
}

// Adam written out by hand over a record's starting state and gradients, optionally with a bug.
enum class AdamBug { None, NoBiasCorrection, EpsInsideSqrt };

void adam_by_hand(StepRecord& r, AdamBug bug) {
  const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, lr = 1e-3;
  const double bc1 = bug == AdamBug::NoBiasCorrection ? 1.0 : 1 - std::pow(beta1, static_cast<double>(r.step));
  const double bc2 = bug == AdamBug::NoBiasCorrection ? 1.0 : 1 - std::pow(beta2, static_cast<double>(r.step));
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t j = 0; j < r.grads[i].size(); ++j) {
      const float g = r.grads[i][j];
      const float m = static_cast<float>(beta1) * r.exp_avg[i][j] + static_cast<float>(1 - beta1) * g;
      const float v = static_cast<float>(beta2) * r.exp_avg_sq[i][j] + static_cast<float>(1 - beta2) * g * g;
      const float vhat = v / static_cast<float>(bc2);
      const float denom = bug == AdamBug::EpsInsideSqrt ? std::sqrt(vhat + static_cast<float>(eps))
                                                        : std::sqrt(vhat) + static_cast<float>(eps);
      r.new_exp_avg[i][j] = m;
      r.new_exp_avg_sq[i][j] = v;
      r.new_params[i][j] = r.params[i][j] - static_cast<float>(lr / bc1) * (m / denom);
    }
  }
}

// Runs `steps` of the seed through `mutate` and the reference; returns each step's report.
std::vector<StepReport> run_checked(int steps, const std::function<void(StepRecord&)>& mutate) {
  SeedRun run;
  TorchStepReference reference;
  std::vector<StepReport> reports;
  for (int k = 0; k < steps; ++k) {
    StepRecord record = run.next();
    mutate(record);
    reports.push_back(reference.check(record));
  }
  return reports;
}

}  // namespace

TEST(TeacherForcedParity, EachOf100SeedStepsMatchesFloat64PyTorch) {
  require_torch();
  const auto reports = run_checked(kSteps, [](StepRecord&) {});
  std::map<std::string, double> worst;
  std::int64_t undecided = 0;
  for (const auto& report : reports) {
    EXPECT_TRUE(report.ok()) << report.failures();
    for (const auto& c : report.items) worst[c.name] = std::max(worst[c.name], c.ratio);
    undecided += report.undecided_relus;
  }
  // The margins, for the record: how much of the rounding bound accel used at worst.
  std::ostringstream summary;
  for (const auto& [name, ratio] : worst) summary << "  " << name << ": " << ratio << "\n";
  std::cout << "worst |accel - torch| / (" << kSafety << " x bound) over " << kSteps << " steps:\n"
            << summary.str() << "undecided ReLUs (counted fully in the bounds): " << undecided << " of "
            << kSteps * kBatch * 256 << "\n";
}

// The check catches real bugs: each mutant below must fail it within the first steps.
TEST(TeacherForcedParity, CatchesAMissingOneOverNInTheLossGradient) {
  require_torch();
  const auto reports = run_checked(2, [](StepRecord& r) {
    for (auto& g : r.grads)
      for (float& value : g) value *= static_cast<float>(kBatch);  // the sum's gradient, not the mean's
  });
  for (const auto& report : reports) EXPECT_GT(report.worst("grad "), 1.0) << "step " << report.step;
}

// Not only gross errors: gradients 0.1% off (a bias in a reduction, a wrong scale) fail too.
TEST(TeacherForcedParity, CatchesGradientsATenthOfAPercentOff) {
  require_torch();
  const auto reports = run_checked(2, [](StepRecord& r) {
    for (auto& g : r.grads)
      for (float& value : g) value *= 1.001f;
  });
  for (const auto& report : reports) EXPECT_GT(report.worst("grad "), 1.0) << "step " << report.step;
}

TEST(TeacherForcedParity, CatchesAdamWithoutBiasCorrection) {
  require_torch();
  const auto reports = run_checked(2, [](StepRecord& r) { adam_by_hand(r, AdamBug::NoBiasCorrection); });
  for (const auto& report : reports) EXPECT_GT(report.worst("adam param"), 1.0) << "step " << report.step;
}

TEST(TeacherForcedParity, CatchesEpsInsideTheSqrt) {
  require_torch();
  const auto reports = run_checked(2, [](StepRecord& r) { adam_by_hand(r, AdamBug::EpsInsideSqrt); });
  for (const auto& report : reports) EXPECT_GT(report.worst("adam param"), 1.0) << "step " << report.step;
}

// The control for the two above: the same hand-written Adam without the bug passes.
TEST(TeacherForcedParity, AcceptsACorrectHandWrittenAdam) {
  require_torch();
  const auto reports = run_checked(2, [](StepRecord& r) { adam_by_hand(r, AdamBug::None); });
  for (const auto& report : reports) EXPECT_TRUE(report.ok()) << report.failures();
}
