// The backend-ops harness (ggml's test-backend-ops): every op and every gradient rule, in every
// floating dtype, on every registered backend, against the CPU's float64 result on the same
// (rounded) inputs, with a tolerance per dtype. A backend that computes wrongly in one dtype,
// reads a stride wrong or touches device memory from the host fails here.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "../support/present_devices.h"
#include "accel/ops/ops.h"

using namespace accel;

namespace {

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;  // the floating inputs, drawn uniform in [lo, hi)
  std::function<Tensor(const std::vector<Tensor>&, Device)> f;
  double lo = -1.0, hi = 1.0;
  bool differentiable = true;
};

Tensor targets_on(Device device) { return from_vector<std::int64_t>({3, 0, 6, 2, 5}, {5}).to(device); }
Tensor remainder_targets(std::int64_t rows, std::int64_t classes, Device device) {
  std::vector<std::int64_t> targets(static_cast<std::size_t>(rows));
  for (std::int64_t i = 0; i < rows; ++i) targets[static_cast<std::size_t>(i)] = (i * 7) % classes;
  return from_vector<std::int64_t>(targets, {rows}).to(device);
}

std::vector<OpCase> op_cases() {
  using In = const std::vector<Tensor>&;
  return {
      {"add (broadcast)", {{3, 4}, {4}}, [](In x, Device) { return add(x[0], x[1]); }},
      {"sub (broadcast)", {{3, 4}, {3, 1}}, [](In x, Device) { return sub(x[0], x[1]); }},
      {"mul (broadcast)", {{3, 4}, {4}}, [](In x, Device) { return mul(x[0], x[1]); }},
      {"div", {{3, 4}, {3, 1}}, [](In x, Device) { return div(x[0], x[1]); }, 0.5, 2.0},
      {"scalar ops", {{2, 5}}, [](In x, Device) { return (x[0] * 3.0 + 1.0) / 2.0; }},
      {"neg", {{2, 5}}, [](In x, Device) { return neg(x[0]); }},
      {"exp", {{2, 5}}, [](In x, Device) { return exp(x[0]); }},
      {"log", {{2, 5}}, [](In x, Device) { return log(x[0]); }, 0.5, 2.0},
      {"relu", {{3, 7}}, [](In x, Device) { return relu(x[0]); }},
      {"sum (all)", {{3, 5}}, [](In x, Device) { return sum(x[0]); }},
      {"sum (dim 1, keepdim)", {{3, 5}}, [](In x, Device) { return sum(x[0], {1}, true); }},
      {"sum (dims 0 and 2)",
       {{2, 3, 4}},
       [](In x, Device) {
         return sum(x[0], {0, 2});
       }},
      {"mean", {{4, 3}}, [](In x, Device) { return mean(x[0], {0}); }},
      {"log_softmax", {{4, 6}}, [](In x, Device) { return log_softmax(x[0], 1); }},
      {"softmax (dim 0)", {{4, 6}}, [](In x, Device) { return softmax(x[0], 0); }},
      {"cross_entropy", {{5, 7}}, [](In x, Device d) { return cross_entropy(x[0], targets_on(d)); }},
      // More rows than one block's threads: on CUDA the loss is summed over several blocks.
      {"cross_entropy (1000 rows)",
       {{1000, 10}},
       [](In x, Device d) { return cross_entropy(x[0], remainder_targets(1000, 10, d)); }},
      {"mse_loss", {{3, 4}, {3, 4}}, [](In x, Device) { return mse_loss(x[0], x[1]); }},
      {"matmul", {{5, 8}, {8, 3}}, [](In x, Device) { return matmul(x[0], x[1]); }},
      {"matmul (transposed views)", {{8, 5}, {3, 8}}, [](In x, Device) { return matmul(x[0].t(), x[1].t()); }},
      {"linear", {{4, 8}, {6, 8}, {6}}, [](In x, Device) { return linear(x[0], x[1], x[2]); }},
      {"linear_relu", {{4, 8}, {6, 8}, {6}}, [](In x, Device) { return linear_relu(x[0], x[1], x[2]); }},
      // Two layers as one node: on cuda and sim the hidden ReLU's mask, written by the first
      // GEMM, is applied by the second layer's input-gradient GEMM with the first's bias
      // gradient (DRELU_BGRAD). One hidden layer only: its pre-activations come from the rounded
      // inputs, so their signs are the float64 reference's (a second would see rounded ones).
      {"mlp (two layers)",
       {{4, 8}, {6, 8}, {6}, {5, 6}, {5}},
       [](In x, Device) {
         const std::vector<LinearLayer> layers{{x[1], x[2]}, {x[3], x[4]}};
         return mlp(x[0], layers);
       }},
      // A strided output gradient: the bias gradient from sum, not from the weight's GEMM.
      {"linear (a transposed gradient)",
       {{4, 8}, {6, 8}, {6}},
       [](In x, Device) { return linear(x[0], x[1], x[2]).t(); }},
      {"permute + reshape (strided copy)",
       {{2, 3, 4}},
       [](In x, Device) {
         return x[0].permute({2, 0, 1}).reshape({4, 6});
       }},
      {"argmax", {{4, 7}}, [](In x, Device) { return argmax(x[0], 1); }, -1.0, 1.0, false},
  };
}

// Worst error allowed, relative to the largest reference value of the tensor compared: a few
// roundings of the dtype (bfloat16 keeps 8 significant bits, float16 11, float32 24).
double tolerance(DType dtype) {
  switch (dtype) {
    case DType::Float64:
      return 1e-12;
    case DType::Float32:
      return 2e-5;
    case DType::Float16:
      return 4e-3;
    default:
      return 3e-2;
  }
}

void expect_close(const std::string& what, const Tensor& got, const Tensor& want, DType dtype) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const auto g = got.to(kCPU).to_vector<double>(), w = want.to_vector<double>();
  double scale = 1.0;
  for (double v : w) scale = std::max(scale, std::abs(v));
  double worst = 0.0;
  for (std::size_t i = 0; i < w.size(); ++i) worst = std::max(worst, std::abs(g[i] - w[i]) / scale);
  EXPECT_LE(worst, tolerance(dtype)) << what << ": worst error " << worst << " of " << scale;
}

}  // namespace

TEST(BackendOps, EveryOpAndGradientInEveryDtypeOnEveryBackendMatchesFloat64) {
  const std::vector<Device> devices = accel::testing::present_devices();
  ASSERT_GE(devices.size(), 2u) << "cpu and sim are always registered";
  int checked = 0;
  for (const OpCase& op : op_cases()) {
    for (DType dtype : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16}) {
      // Inputs drawn once, rounded to the dtype; the reference sees the same rounded values.
      Generator gen(7);
      std::vector<Tensor> rounded, reference_inputs;
      for (const Shape& shape : op.shapes) {
        rounded.push_back(rand(shape, gen, op.lo, op.hi).to(dtype));
        reference_inputs.push_back(rounded.back().to(DType::Float64).requires_grad_());
      }
      const Tensor reference = op.f(reference_inputs, kCPU);
      Tensor weights;
      if (op.differentiable) {
        weights = rand(reference.shape(), gen, -1.0, 1.0).to(dtype);
        sum(mul(reference, weights.to(DType::Float64))).backward();
      }
      for (Device device : devices) {
        const std::string what = op.name + " in " + std::string(dtype_name(dtype)) + " on " + device.to_string();
        std::vector<Tensor> inputs;
        for (const Tensor& r : rounded) {
          Tensor leaf = r.detach().to(device).clone();  // a leaf of its own on each device
          inputs.push_back(op.differentiable ? leaf.requires_grad_() : leaf);
        }
        const Tensor out = op.f(inputs, device);
        EXPECT_EQ(out.device(), device) << what;
        if (!op.differentiable) {
          EXPECT_EQ(out.to(kCPU).to_vector<std::int64_t>(), reference.to_vector<std::int64_t>()) << what;
          ++checked;
          continue;
        }
        EXPECT_EQ(out.dtype(), dtype) << what;
        expect_close(what, out, reference, dtype);
        sum(mul(out, weights.to(device))).backward();
        for (std::size_t i = 0; i < inputs.size(); ++i) {
          ASSERT_TRUE(inputs[i].grad().defined()) << what << ": no gradient for input " << i;
          EXPECT_EQ(inputs[i].grad().dtype(), dtype) << what << ": gradient " << i;
          expect_close(what + ", gradient of input " + std::to_string(i), inputs[i].grad(), reference_inputs[i].grad(),
                       dtype);
        }
        ++checked;
      }
    }
  }
  std::cout << checked << " op x dtype x backend combinations checked on " << devices.size() << " backends\n";
}

TEST(BackendOps, SimDeviceMemoryIsNotHostAddressable) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // OpenMP's threads exist by now
  const Tensor t = full({4}, 2.5, DType::Float32, Device("sim:0"));
  EXPECT_EQ(t.to(kCPU).to_vector<float>(), std::vector<float>(4, 2.5f));  // through the backend: fine
  // A host read of the device pointer, as a kernel that forgot the device would do, faults.
  EXPECT_DEATH(
      {
        const volatile float value = *static_cast<const volatile float*>(t.raw_data());
        (void)value;
      },
      "");
}
