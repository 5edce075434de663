#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <set>

#include "accel/ops/ops.h"
#include "accel/tensor/tensor.h"

using namespace accel;

namespace {
Tensor iota(const Shape& shape) {
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  std::iota(v.begin(), v.end(), 0.0f);
  return from_vector(v, shape);
}
}  // namespace

TEST(TensorCreation, FactoriesFillAsAsked) {
  EXPECT_EQ(zeros({2, 3}).to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(ones({4}, DType::Int64).to_vector<std::int64_t>(), std::vector<std::int64_t>(4, 1));
  EXPECT_EQ(full({2}, 2.5).to_vector<float>(), (std::vector<float>{2.5f, 2.5f}));
  EXPECT_EQ(arange(5).to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1.0, 2.0, 0.25, DType::Float32).to_vector<float>(), (std::vector<float>{1.0f, 1.25f, 1.5f, 1.75f}));
  EXPECT_EQ(arange(3.0, 0.0, -1.0).to_vector<std::int64_t>(), (std::vector<std::int64_t>{3, 2, 1}));
  EXPECT_EQ(scalar_tensor(7.0).dim(), 0u);
  EXPECT_EQ(scalar_tensor(7.0).item<float>(), 7.0f);
}

TEST(TensorCreation, RandomFactoriesAreSeededAndInRange) {
  Generator a(42), b(42);
  EXPECT_EQ(randn({100}, a).to_vector<float>(), randn({100}, b).to_vector<float>());
  Generator g(7);
  const auto normal = randn({20000}, g).to_vector<float>();
  double mean = 0, var = 0;
  for (float v : normal) mean += v;
  mean /= normal.size();
  for (float v : normal) var += (v - mean) * (v - mean);
  var /= normal.size();
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(var, 1.0, 0.05);
  for (float v : rand({1000}, g, -2.0, 3.0).to_vector<float>()) {
    EXPECT_GE(v, -2.0f);
    EXPECT_LT(v, 3.0f);
  }
  std::set<std::int64_t> seen;
  for (std::int64_t v : randint(3, 7, {1000}, g).to_vector<std::int64_t>()) {
    EXPECT_GE(v, 3);
    EXPECT_LT(v, 7);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_THROW(randint(5, 5, {1}), ValueError);
}

TEST(TensorViews, ReshapeInfersOneDimAndSharesStorage) {
  Tensor t = iota({2, 3, 4});
  Tensor r = t.reshape({-1, 4});
  EXPECT_EQ(r.shape(), (Shape{6, 4}));
  EXPECT_EQ(r.raw_data(), t.raw_data());
  EXPECT_THROW(t.reshape({5, -1}), ShapeError);
  EXPECT_THROW(t.reshape({-1, -1}), ShapeError);
  try {
    t.view({7, 4});
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3, 4]"), std::string::npos);
  }
}

TEST(TensorViews, TransposeIsAViewAndViewRefusesIt) {
  Tensor t = iota({2, 3});
  Tensor tt = t.t();
  EXPECT_EQ(tt.shape(), (Shape{3, 2}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.contiguous().to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_THROW(tt.view({6}), ShapeError);
  EXPECT_EQ(tt.reshape({6}).to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(t.permute({1, 0}).contiguous().to_vector<float>(), tt.contiguous().to_vector<float>());
  EXPECT_THROW(iota({2, 2, 2}).t(), ShapeError);
}

TEST(TensorViews, SliceWithStepsAndNegativeBounds) {
  Tensor t = iota({10});
  EXPECT_EQ(t.slice(0, 2, 8, 3).to_vector<float>(), (std::vector<float>{2, 5}));
  EXPECT_EQ(t.slice(0, -3, 100).to_vector<float>(), (std::vector<float>{7, 8, 9}));
  EXPECT_EQ(t.slice(0, 5, 2).numel(), 0);
  Tensor m = iota({3, 4});
  EXPECT_EQ(m.slice(1, 1, 3).to_vector<float>(), (std::vector<float>{1, 2, 5, 6, 9, 10}));
  EXPECT_EQ(m.select(0, -1).to_vector<float>(), (std::vector<float>{8, 9, 10, 11}));
  EXPECT_EQ(m.select(1, 2).to_vector<float>(), (std::vector<float>{2, 6, 10}));
  EXPECT_THROW(m.select(0, 3), ShapeError);
  EXPECT_THROW(t.slice(0, 0, 5, 0), ValueError);
}

TEST(TensorViews, ExpandRepeatsSizeOneDims) {
  Tensor row = iota({1, 3});
  Tensor e = row.expand({2, 3});
  EXPECT_EQ(e.strides()[0], 0);
  EXPECT_EQ(e.contiguous().to_vector<float>(), (std::vector<float>{0, 1, 2, 0, 1, 2}));
  EXPECT_THROW(iota({2, 3}).expand({4, 3}), ShapeError);
}

TEST(TensorConversion, DTypesConvertLikePyTorch) {
  Tensor f = from_vector<float>({-1.5f, 0.0f, 2.7f, 255.0f}, {4});
  EXPECT_EQ(f.to(DType::Int64).to_vector<std::int64_t>(), (std::vector<std::int64_t>{-1, 0, 2, 255}));
  EXPECT_EQ(f.to(DType::Bool).to_vector<bool>(), (std::vector<bool>{true, false, true, true}));
  EXPECT_EQ(f.to(DType::BFloat16).to(DType::Float32).to_vector<float>(),
            (std::vector<float>{-1.5f, 0.0f, 2.703125f, 255.0f}));
  EXPECT_EQ(f.to(DType::Float16).to(DType::Float32).to_vector<float>(),
            (std::vector<float>{-1.5f, 0.0f, 2.69921875f, 255.0f}));
  Tensor u = from_vector<std::uint8_t>({0, 128, 255}, {3});
  EXPECT_EQ(u.to(DType::Float32).to_vector<float>(), (std::vector<float>{0.0f, 128.0f, 255.0f}));
  EXPECT_EQ(iota({2, 3}).t().to(DType::Int32).to_vector<std::int32_t>(), (std::vector<std::int32_t>{0, 3, 1, 4, 2, 5}));
}

TEST(TensorConversion, ItemNeedsOneElementAndDataPtrChecksDType) {
  EXPECT_EQ(from_vector<std::int64_t>({9}, {1}).item<std::int64_t>(), 9);
  EXPECT_THROW(zeros({2}).item<float>(), ShapeError);
  EXPECT_THROW(zeros({2}).data_ptr<std::int64_t>(), DTypeError);
  EXPECT_THROW(Tensor().shape(), ValueError);
}

TEST(TensorDevice, CudaWithoutADeviceIsAClearErrorNotACrash) {
  try {
    zeros({2, 2}).to(Device("cuda"));
    FAIL() << "expected DeviceError on a machine without a usable CUDA device";
  } catch (const DeviceError& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
  EXPECT_THROW(zeros({2}, DType::Float32, Device("cuda:0")), DeviceError);
}

TEST(TensorAutogradState, RequiresGradOnlyForFloatingPoint) {
  Tensor t = zeros({2});
  t.requires_grad_();
  EXPECT_TRUE(t.requires_grad());
  EXPECT_TRUE(t.is_leaf());
  Tensor i = zeros({2}, DType::Int64);
  EXPECT_THROW(i.requires_grad_(), DTypeError);
  EXPECT_FALSE(t.detach().requires_grad());
}

// A tensor whose bytes do not fit in size_t is a ShapeError before anything is allocated.
TEST(Tensor, ShapesTooLargeToAllocateAreShapeErrorsNotCrashes) {
  constexpr std::int64_t k2to32 = std::int64_t{1} << 32, k2to31 = std::int64_t{1} << 31;
  EXPECT_THROW(zeros({k2to32, k2to32}), ShapeError);
  try {
    zeros({k2to31, k2to31});  // 2^62 elements fit in int64, their 2^64 bytes do not fit in size_t
    ADD_FAILURE() << "no error";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("float32 tensor of shape [2147483648, 2147483648]"), std::string::npos)
        << e.what();
  }
}
