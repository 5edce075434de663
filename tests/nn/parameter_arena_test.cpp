// The parameter arena (tensor/flat_arena.h, nn::Module::pack_parameters): one allocation for
// the values, one for the gradients at fixed places, the optimizer's state as a third, and
// training that is bit for bit the same as with separate tensors.
#include <gtest/gtest.h>

#include <functional>

#include "accel/backends/kernel_recording.h"
#include "accel/nn/layers.h"
#include "accel/ops/autocast.h"
#include "accel/ops/ops.h"
#include "accel/optim/optimizer.h"
#include "accel/tensor/flat_arena.h"

using namespace accel;

namespace {

nn::Sequential small_mlp(std::uint64_t seed) {
  Generator g(seed);
  return nn::Sequential(nn::Linear(13, 7, true, g), nn::ReLU(), nn::Linear(7, 3, true, g));
}

std::vector<std::vector<float>> values_of(const std::vector<Tensor>& params) {
  std::vector<std::vector<float>> out;
  for (const Tensor& p : params) out.push_back(p.to_vector<float>());
  return out;
}

// Trains `model` for `steps` steps on fixed batches with the optimizer `make` builds.
void train(nn::Sequential& model, const std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>& make,
           int steps, int accumulate = 1) {
  auto optimizer = make(model.parameters());
  Generator data(99);
  for (int s = 0; s < steps; ++s) {
    optimizer->zero_grad();
    for (int a = 0; a < accumulate; ++a) {
      const Tensor x = randn({5, 13}, data);
      const Tensor y = randint(0, 3, {5}, data);
      cross_entropy(model(x), y).backward();
    }
    optimizer->step();
  }
}

}  // namespace

TEST(ParameterArena, PacksEveryParameterIntoOneAlignedAllocationKeepingHandlesAndValues) {
  nn::Sequential model = small_mlp(1);
  const std::vector<Tensor> params = model.parameters();
  const auto before = values_of(params);
  model.pack_parameters();
  EXPECT_TRUE(model.is_packed());
  EXPECT_EQ(values_of(model.parameters()), before);
  const FlatArena* arena = arena_holding(params);
  ASSERT_NE(arena, nullptr);
  // 13*7 = 91 -> 96, 7 -> 16, 21 -> 32, 3 -> 16 elements.
  EXPECT_EQ(arena->values.numel(), 96 + 16 + 32 + 16);
  const std::vector<std::int64_t> offsets{0, 96, 112, 144};
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(params[i].impl().storage, arena->values.impl().storage) << i;
    EXPECT_EQ(arena_offset(params[i]), offsets[i]) << i;
    EXPECT_TRUE(params[i].is_contiguous());
  }
  // A subset, or the same tensors listed twice, is not "exactly the members".
  EXPECT_EQ(arena_holding({params[0], params[1], params[2]}), nullptr);
  EXPECT_EQ(arena_holding({params[0], params[0], params[1], params[2]}), nullptr);
}

TEST(ParameterArena, GradientsStayAtTheirFixedPlacesAcrossStepsAndAccumulate) {
  nn::Sequential model = small_mlp(2);
  model.pack_parameters();
  const std::vector<Tensor> params = model.parameters();
  const FlatArena* arena = arena_holding(params);
  ASSERT_NE(arena, nullptr);
  const Tensor x = randn({4, 13}), y = from_vector<std::int64_t>({0, 1, 2, 1}, {4});
  cross_entropy(model(x), y).backward();
  std::vector<void*> addresses;
  for (const Tensor& p : params) {
    ASSERT_TRUE(grad_at_home(p));
    addresses.push_back(p.grad().raw_data());
  }
  const auto once = values_of({params[0].grad()});
  EXPECT_EQ(addresses[0], arena->grads.raw_data());
  cross_entropy(model(x), y).backward();  // a second backward accumulates in place
  const auto twice = params[0].grad().to_vector<float>();
  for (std::size_t i = 0; i < twice.size(); ++i) EXPECT_FLOAT_EQ(twice[i], 2 * once[0][i]);
  model.zero_grad();  // none, as PyTorch 2; the next backward lands at the same addresses
  EXPECT_FALSE(params[0].grad().defined());
  cross_entropy(model(x), y).backward();
  for (std::size_t i = 0; i < params.size(); ++i) EXPECT_EQ(params[i].grad().raw_data(), addresses[i]);
  EXPECT_EQ(params[0].grad().to_vector<float>(), once[0]);
  // Padding between members stays zero (bias 0 has 7 elements in a 16-element slot).
  const auto flat = arena->grads.to_vector<float>();
  for (std::int64_t i = 96 + 7; i < 112; ++i) EXPECT_EQ(flat[static_cast<std::size_t>(i)], 0.0f) << i;
}

TEST(ParameterArena, PackedTrainingIsBitForBitTheSameAsSeparateTensors) {
  const std::vector<std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>> optimizers{
      [](std::vector<Tensor> p) { return std::make_unique<optim::Adam>(std::move(p), optim::AdamOptions{.lr = 0.01}); },
      [](std::vector<Tensor> p) { return std::make_unique<optim::AdamW>(std::move(p), optim::AdamWOptions{}); },
      [](std::vector<Tensor> p) {
        return std::make_unique<optim::SGD>(std::move(p), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
      },
      [](std::vector<Tensor> p) { return std::make_unique<optim::SGD>(std::move(p), optim::SGDOptions{.lr = 0.1}); },
  };
  for (std::size_t k = 0; k < optimizers.size(); ++k) {
    nn::Sequential separate = small_mlp(3), packed = small_mlp(3);
    packed.pack_parameters();
    train(separate, optimizers[k], 6, 2);  // with gradient accumulation over two batches
    train(packed, optimizers[k], 6, 2);
    EXPECT_EQ(values_of(packed.parameters()), values_of(separate.parameters())) << "optimizer " << k;
    EXPECT_NE(values_of(packed.parameters()), values_of(small_mlp(3).parameters())) << "it trained";
  }
}

TEST(ParameterArena, AdamStateIsOneAllocationLinedUpWithTheArena) {
  nn::Sequential model = small_mlp(4);
  model.pack_parameters();
  optim::Adam adam(model.parameters(), {});
  cross_entropy(model(randn({2, 13})), from_vector<std::int64_t>({0, 2}, {2})).backward();
  adam.step();
  EXPECT_EQ(adam.last_step_kernels(), 1u);  // one kernel over the flat buffers
  const Tensor first = adam.exp_avg(0), last = adam.exp_avg_sq(3);
  EXPECT_EQ(first.impl().storage, last.impl().storage);
  EXPECT_EQ(first.impl().storage->nbytes(), 2 * 160 * sizeof(float));
  // Unpacked, each parameter's state is an allocation of its own.
  nn::Sequential loose = small_mlp(4);
  optim::Adam adam_loose(loose.parameters(), {});
  cross_entropy(loose(randn({2, 13})), from_vector<std::int64_t>({0, 2}, {2})).backward();
  adam_loose.step();
  EXPECT_NE(adam_loose.exp_avg(0).impl().storage, adam_loose.exp_avg_sq(3).impl().storage);
}

TEST(ParameterArena, AGradientReplacedByHandOrMissingFallsBackAndStaysCorrect) {
  nn::Sequential packed = small_mlp(5), separate = small_mlp(5);
  packed.pack_parameters();
  optim::Adam a(packed.parameters(), {.lr = 0.05}), b(separate.parameters(), {.lr = 0.05});
  for (auto* model : {&packed, &separate}) {
    cross_entropy((*model)(ones({1, 13})), from_vector<std::int64_t>({1}, {1})).backward();
    model->parameters()[3].set_grad(Tensor());  // no gradient for the last bias this step
    model->parameters()[0].set_grad(full({7, 13}, 0.25));
  }
  a.step();
  b.step();
  EXPECT_EQ(values_of(packed.parameters()), values_of(separate.parameters()));
  // Parameter 3 has not stepped, so counts differ from now on: two groups, two kernels.
  cross_entropy(packed(ones({1, 13})), from_vector<std::int64_t>({1}, {1})).backward();
  a.step();
  EXPECT_EQ(a.last_step_kernels(), 2u);
  EXPECT_EQ(a.step_count(3), 1);
  EXPECT_EQ(a.step_count(0), 2);
}

TEST(ParameterArena, MovingThePackedModelKeepsItPacked) {
  nn::Sequential model = small_mlp(6);
  model.pack_parameters();
  const auto before = values_of(model.parameters());
  model.to(Device("sim:0"));
  const std::vector<Tensor> params = model.parameters();
  const FlatArena* arena = arena_holding(params);
  ASSERT_NE(arena, nullptr);
  EXPECT_EQ(arena->values.device(), Device("sim:0"));
  EXPECT_EQ(values_of(params), before);
  model.to(kCPU);
  EXPECT_NE(arena_holding(model.parameters()), nullptr);
}

TEST(ParameterArena, BadMembersAreTypedErrorsNamingTheTensor) {
  Tensor a = zeros({3}).requires_grad_();
  EXPECT_THROW(pack_into_arena({}), ValueError);
  EXPECT_THROW(pack_into_arena({a, a}), ValueError);
  EXPECT_THROW(pack_into_arena({a, zeros({2})}), ValueError);  // not a parameter
  Tensor on_sim = zeros({2}, DType::Float32, Device("sim:0")).requires_grad_();
  try {
    pack_into_arena({a, on_sim});
    FAIL() << "mixed devices were packed";
  } catch (const DeviceError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 1 is on sim:0"), std::string::npos) << e.what();
  }
}

// Gradient rules write a packed weight's gradient straight into its slot (the linear layer's
// weight product, autocast's cast back to float32) instead of the engine copying it there. The
// slot is offered only while it holds nothing: a weight used twice, by two nodes or twice by one,
// still gets both contributions summed. Each case against the same weights unpacked.
TEST(ParameterArena, GradientsWrittenStraightIntoTheirSlotsMatchSeparateTensors) {
  const auto grads_of = [](bool packed, const std::function<Tensor(const Tensor&, const Tensor&)>& loss_of) {
    Generator g(4);
    Tensor w = randn({6, 6}, g).requires_grad_(), b = randn({6}, g).requires_grad_();
    if (packed) pack_into_arena({w, b});
    loss_of(w, b).backward();
    std::vector<float> out = w.grad().to_vector<float>();
    for (float v : b.grad().to_vector<float>()) out.push_back(v);
    if (packed) {
      EXPECT_TRUE(grad_at_home(w) && grad_at_home(b));
    }
    return out;
  };
  Generator data(8);
  const Tensor x = randn({5, 6}, data), c = randn({6, 6}, data);  // c: the two uses get different gradients
  const std::vector<std::function<Tensor(const Tensor&, const Tensor&)>> cases{
      [&](const Tensor& w, const Tensor& b) { return sum(linear(x, w, b)); },                      // one use
      [&](const Tensor& w, const Tensor& b) { return sum(linear(relu(linear(x, w, b)), w, b)); },  // two nodes
      [&](const Tensor& w, const Tensor& b) { return sum(mul(linear(w, w, b), c)); },              // one node, twice
      [&](const Tensor& w, const Tensor& b) {
        const amp::Autocast autocast(DeviceType::CPU, DType::BFloat16);  // the cast's rule writes the slot
        return sum(linear(x, w, b).to(DType::Float32));
      },
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(grads_of(true, cases[i]), grads_of(false, cases[i])) << "case " << i;
  }
}

// ... and the slot is written by the rule itself: a captured backward of a packed weight records
// no copy into the arena after the weight's gradient product (it recorded one before).
TEST(ParameterArena, ABackwardWritesAPackedWeightsGradientWithoutACopy) {
  Generator g(4);
  Tensor w = randn({6, 6}, g).requires_grad_();
  pack_into_arena({w});
  const Tensor x = randn({5, 6}, g);
  KernelRecording recording(kCPU);
  {
    const CaptureScope capture(recording);
    sum(linear(x, w, Tensor())).backward();
  }
  std::string calls;
  for (const char* name : recording.call_names()) calls += std::string(name) + " ";
  // sum's backward, then the weight's gradient product, which is the last call: nothing copies
  // its result into the arena.
  ASSERT_FALSE(recording.call_names().empty());
  EXPECT_STREQ(recording.call_names().back(), "gemm") << calls;
  EXPECT_TRUE(grad_at_home(w));
}
