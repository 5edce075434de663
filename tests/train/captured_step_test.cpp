// CapturedStep: a recorded training step replays to exactly the eager results, allocates
// nothing when it replays, and falls back to eager (saying why) when a step cannot be replayed.
#include <gtest/gtest.h>

#include <functional>

#include "accel/amp/grad_scaler.h"
#include "accel/memory/allocator.h"
#include "accel/nn/layers.h"
#include "accel/ops/ops.h"
#include "accel/optim/optimizer.h"
#include "accel/train/captured_step.h"
#include "accel/train/seed_trainer.h"

using namespace accel;

namespace {

struct Trainee {
  Generator init{5};
  Generator drop{9};  // each trainee's own: dropout's masks follow its generator
  nn::Sequential model;
  std::unique_ptr<optim::Adam> adam;
  explicit Trainee(bool pack, bool dropout = false)
      : model(dropout ? nn::Sequential(nn::Linear(10, 16, true, init), nn::ReLU(), nn::Dropout(0.5, drop),
                                       nn::Linear(16, 3, true, init))
                      : nn::Sequential(nn::Linear(10, 16, true, init), nn::ReLU(), nn::Linear(16, 3, true, init))) {
    if (pack) model.pack_parameters();
    adam = std::make_unique<optim::Adam>(model.parameters(), optim::AdamOptions{.lr = 0.01});
  }
  train::CapturedStep step(bool enabled) {
    return train::CapturedStep(
        [this](const Tensor& x, const Tensor& y) {
          adam->zero_grad();
          Tensor loss = cross_entropy(model(x), y);
          loss.backward();
          adam->step();
          return loss;
        },
        enabled);
  }
};

struct Batches {
  Generator gen{11};
  std::pair<Tensor, Tensor> next(std::int64_t n = 8) { return {randn({n, 10}, gen), randint(0, 3, {n}, gen)}; }
};

std::vector<std::vector<float>> values(const nn::Module& m) {
  std::vector<std::vector<float>> out;
  for (const Tensor& p : m.parameters()) out.push_back(p.to_vector<float>());
  return out;
}

}  // namespace

// Six steps of the same model, one trainee eager and one captured, on the same batches; the
// losses of each. `on_last_replay` wraps the captured side's sixth step.
struct SideBySide {
  Trainee eager_setup, captured_setup;
  train::CapturedStep eager, captured;
  Batches a, b;
  std::vector<float> eager_losses, captured_losses;
  explicit SideBySide(bool dropout)
      : eager_setup(true, dropout),
        captured_setup(true, dropout),
        eager(eager_setup.step(false)),
        captured(captured_setup.step(true)) {}
  void run_six(const std::function<Tensor(const std::function<Tensor()>&)>& on_last_replay = nullptr) {
    for (int i = 0; i < 6; ++i) {
      const auto [x, y] = a.next();
      const auto [x2, y2] = b.next();
      eager_losses.push_back(eager.run(x, y).item<float>());
      const auto replay = [&, x2 = x2, y2 = y2] { return captured.run(x2, y2); };
      captured_losses.push_back((i == 5 && on_last_replay ? on_last_replay(replay) : replay()).item<float>());
    }
  }
};

TEST(CapturedStep, ReplayMatchesEagerBitForBitAndAllocatesNothing) {
  SideBySide runs(false);
  auto& [eager_setup, captured_setup, eager, captured, a, b, eager_losses, captured_losses] = runs;
  runs.run_six([](const std::function<Tensor()>& replay) {  // a replay takes no memory: all is in the pool
    const auto before = memory::host_allocator().stats().allocations;
    const Tensor loss = replay();
    EXPECT_EQ(memory::host_allocator().stats().allocations, before);
    return loss;
  });
  EXPECT_TRUE(captured.replaying()) << captured.fallback_reason();
  // At least the forward's 2 GEMMs and loss, the loss gradient, the backward's 3 GEMMs (the
  // bias gradients come with the weights') and Adam: the whole step is in the recording.
  EXPECT_GE(captured.kernels(), 8u);
  EXPECT_EQ(captured_losses, eager_losses);
  EXPECT_EQ(values(captured_setup.model), values(eager_setup.model));
  EXPECT_EQ(captured_setup.adam->step_count(0), 6);
  // A batch of another shape (an epoch's short last batch) runs eagerly, then replay resumes.
  const auto [x_short, y_short] = a.next(3);
  EXPECT_EQ(eager.run(x_short, y_short).item<float>(), captured.run(x_short, y_short).item<float>());
  const auto [x, y] = a.next();
  EXPECT_EQ(eager.run(x, y).item<float>(), captured.run(x, y).item<float>());
  EXPECT_EQ(values(captured_setup.model), values(eager_setup.model));
}

// A batch written straight into the step's own input buffers (as fit gathers it) replays as a
// batch that run() copies there: the same losses and weights, bit for bit.
TEST(CapturedStep, ABatchWrittenIntoItsOwnBuffersReplaysAsACopiedOne) {
  Trainee copied_setup(true), in_place_setup(true);
  train::CapturedStep copied = copied_setup.step(true), in_place = in_place_setup.step(true);
  Batches batches;
  EXPECT_FALSE(in_place.input_buffers().first.defined());  // none before the step has warmed up
  for (int i = 0; i < 6; ++i) {
    const auto [x, y] = batches.next();
    const float expected = copied.run(x, y).item<float>();
    auto [x_buffer, y_buffer] = in_place.input_buffers();
    if (!x_buffer.defined()) {
      EXPECT_EQ(in_place.run(x, y).item<float>(), expected) << "step " << i;
      continue;
    }
    const void* where = x_buffer.raw_data();
    copy_(x_buffer, x);
    copy_(y_buffer, y);
    EXPECT_EQ(in_place.run(x_buffer, y_buffer).item<float>(), expected) << "step " << i;
    EXPECT_EQ(in_place.input_buffers().first.raw_data(), where);
  }
  EXPECT_TRUE(in_place.replaying()) << in_place.fallback_reason();
  EXPECT_EQ(values(in_place_setup.model), values(copied_setup.model));
  EXPECT_FALSE(copied_setup.step(false).input_buffers().first.defined());  // eager steps have none
}

// A capture keeps what its calls touch alive: memory from before it through a reference (a
// replay writes there again), its own pool's blocks through the pool. Only the first are
// referenced: a gradient made during the capture must not look shared, or the autograd engine
// copies it before accumulating.
TEST(CapturedStep, ACaptureRetainsMemoryFromBeforeItButNotItsOwnPools) {
  const Tensor before = ones({4});
  KernelRecording recording(kCPU);
  const CaptureScope capture(recording);
  const Tensor made = add(before, before);
  EXPECT_EQ(made.impl().storage.use_count(), 1);
  EXPECT_GT(before.impl().storage.use_count(), 1);
  EXPECT_EQ(made.to_vector<float>(), std::vector<float>(4, 2.0f));
}

// Dropout draws its mask on the device from a counter kept there (Philox): the step is captured,
// and each replay draws a new mask, the same as eager steps draw.
TEST(CapturedStep, ADropoutStepIsCapturedAndReplaysTheMasksEagerStepsDraw) {
  SideBySide runs(true);
  auto& [eager_setup, captured_setup, eager, captured, a, b, eager_losses, captured_losses] = runs;
  runs.run_six();
  EXPECT_TRUE(captured.replaying()) << captured.fallback_reason();
  EXPECT_EQ(captured_losses, eager_losses);
  EXPECT_EQ(values(captured_setup.model), values(eager_setup.model));
  // The masks changed from step to step: the same batch twice in eval mode gives one loss, in
  // training (new masks) two.
  const auto [x, y] = a.next();
  eager_setup.model.train(true);
  Tensor first = cross_entropy(eager_setup.model(x), y), second = cross_entropy(eager_setup.model(x), y);
  EXPECT_NE(first.item<float>(), second.item<float>());
}

TEST(CapturedStep, StepsThatCannotBeReplayedRunEagerlyAndSayWhy) {
  {
    Trainee unpacked(false);  // Adam's counts on the host
    auto step = unpacked.step(true);
    Batches batches;
    for (int i = 0; i < 3; ++i) std::apply([&](auto x, auto y) { step.run(x, y); }, batches.next());
    EXPECT_FALSE(step.replaying());
    EXPECT_NE(step.fallback_reason().find("Adam"), std::string::npos) << step.fallback_reason();
    EXPECT_EQ(unpacked.adam->step_count(0), 3);  // every step still ran
  }
  {
    Trainee scaled(false);  // unpacked: GradScaler decides the skip on the host
    amp::GradScaler scaler;
    train::CapturedStep step([&](const Tensor& x, const Tensor& y) {
      scaled.adam->zero_grad();
      Tensor loss = cross_entropy(scaled.model(x), y);
      scaler.scale(loss).backward();
      scaler.step(*scaled.adam);  // reads the inf flag on the host
      scaler.update();
      return loss;
    });
    Batches batches;
    for (int i = 0; i < 3; ++i) std::apply([&](auto x, auto y) { step.run(x, y); }, batches.next());
    EXPECT_FALSE(step.replaying());
    EXPECT_NE(step.fallback_reason().find("host"), std::string::npos) << step.fallback_reason();
  }
}

TEST(CapturedStep, AScaledStepOfAPackedAdamSkipsOnTheDeviceAndIsCaptured) {
  // A scale so large that the first steps overflow: they are skipped (on the device), the scale
  // halves until the gradients fit; eager and captured runs agree bit for bit throughout.
  const auto run = [](bool capture) {
    Trainee t(true);
    amp::GradScaler scaler(kCPU, {.init_scale = 3e38, .growth_interval = 3});
    train::CapturedStep step(
        [&](const Tensor& x, const Tensor& y) {
          t.adam->zero_grad();
          Tensor loss = cross_entropy(t.model(x), y);
          scaler.scale(mul(loss, 10.0)).backward();  // 10 x 3e38 overflows: the first steps are skipped
          EXPECT_EQ(scaler.step(*t.adam), amp::ScaledStep::DecidedOnDevice);
          scaler.update();
          return loss;
        },
        capture);
    Batches batches;
    std::vector<float> losses;
    for (int i = 0; i < 12; ++i)
      std::apply([&](auto x, auto y) { losses.push_back(static_cast<float>(step.run(x, y).item_double())); },
                 batches.next());
    if (capture) {
      EXPECT_TRUE(step.replaying()) << step.fallback_reason();
    }
    return std::make_tuple(losses, values(t.model), scaler.get_scale(), t.adam->step_count(0));
  };
  const auto [eager_losses, eager_values, eager_scale, eager_steps] = run(false);
  const auto [losses, params, scale, steps] = run(true);
  EXPECT_EQ(losses, eager_losses);
  EXPECT_EQ(params, eager_values);
  EXPECT_EQ(scale, eager_scale);
  EXPECT_LT(scale, 3e38);  // it backed off: steps were skipped ...
  EXPECT_GT(steps, 0);     // ... and later ones taken
  EXPECT_LT(steps, 12);
  EXPECT_EQ(steps, eager_steps);
}

TEST(CapturedStep, AccelTrainCapturesByDefaultWithTheEagerResults) {
  const auto run = [](bool capture) {
    train::SeedConfig config;
    config.epochs = 1;
    config.threads = 1;
    config.device = "sim";  // device memory that is not host-addressable: the replay stays on the device
    config.capture = capture;
    return train::train_seed_model(config);
  };
  const auto captured = run(true), eager = run(false);
  EXPECT_EQ(captured.step_mode.rfind("captured: ", 0), 0u) << captured.step_mode;
  EXPECT_EQ(eager.step_mode, "eager: --eager");
  EXPECT_EQ(captured.epochs[0].train_loss, eager.epochs[0].train_loss);
  EXPECT_EQ(captured.epochs[0].test_accuracy, eager.epochs[0].test_accuracy);
}

TEST(CapturedStep, HostFilledTensorsAreNotReplayedAndLoadedStateIsRecaptured) {
  {
    Trainee noisy(true);
    Generator noise(3);
    train::CapturedStep step([&](const Tensor& x, const Tensor& y) {
      noisy.adam->zero_grad();
      Tensor loss = cross_entropy(noisy.model(add(x, mul(randn(x.shape(), noise), 0.1))), y);
      loss.backward();
      noisy.adam->step();
      return loss;
    });
    Batches batches;
    for (int i = 0; i < 3; ++i) std::apply([&](auto x, auto y) { step.run(x, y); }, batches.next());
    EXPECT_FALSE(step.replaying());
    EXPECT_NE(step.fallback_reason().find("host"), std::string::npos) << step.fallback_reason();
  }
  // Loading optimizer state drops the device count the recording writes; the recording keeps
  // that memory alive (ASan checks no replay writes freed memory), and recapture() picks up the
  // loaded state so the run matches an eager one again.
  Trainee eager_setup(true), captured_setup(true);
  auto eager = eager_setup.step(false);
  auto captured = captured_setup.step(true);
  Batches a, b;
  for (int i = 0; i < 3; ++i) {
    std::apply([&](auto x, auto y) { eager.run(x, y); }, a.next());
    std::apply([&](auto x, auto y) { captured.run(x, y); }, b.next());
  }
  ASSERT_TRUE(captured.replaying());
  const auto state = eager_setup.adam->state_dict();
  eager_setup.adam->load_state_dict(state);
  captured_setup.adam->load_state_dict(captured_setup.adam->state_dict());
  std::apply([&](auto x, auto y) { captured.run(x, y); }, Batches{}.next());  // stale but memory-safe
  // Start both again from the same point, the captured one recaptured.
  captured_setup.model.load_state_dict(eager_setup.model.state_dict());
  captured_setup.adam->load_state_dict(state);
  captured.recapture();
  Batches c, d;
  for (int i = 0; i < 3; ++i) {
    const auto [x, y] = c.next();
    const auto [x2, y2] = d.next();
    EXPECT_EQ(eager.run(x, y).item<float>(), captured.run(x2, y2).item<float>()) << i;
  }
  EXPECT_TRUE(captured.replaying());
  EXPECT_EQ(values(captured_setup.model), values(eager_setup.model));
}
