// GemmEpilogue::a_row_sums (a linear layer's bias gradient written by its weight-gradient GEMM)
// on every present backend: cuBLASLt's fused BGRADB on a GPU, the sum kernel elsewhere. The
// linear op's gradients in the backend-ops harness take this path too; here each layout of A
// and the empty cases are called directly, against float64 loops.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "../support/present_devices.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

using namespace accel;

namespace {

using accel::testing::present_devices;

// C = A B and A's row sums through the backend, A [m, k] given as `a_view` (row-major, or the
// .t() of a row-major [k, m]); compared with float64 loops over the same rounded values.
void check_row_sums(Device device, DType dtype, const Tensor& a_view, const Tensor& b_host) {
  const std::int64_t m = a_view.shape()[0], k = a_view.shape()[1], n = b_host.shape()[1];
  const std::string what = std::string(dtype_name(dtype)) + " on " + device.to_string() + ", A [" + std::to_string(m) +
                           ", " + std::to_string(k) + "]" + (a_view.is_contiguous() ? " row-major" : " transposed");
  const std::vector<double> a = a_view.contiguous().to(DType::Float64).to_vector<double>();
  const std::vector<double> b = b_host.to(DType::Float64).to_vector<double>();
  const Tensor a_dev = a_view.is_contiguous() ? a_view.to(device) : a_view.t().contiguous().to(device).t();
  const Tensor b_dev = b_host.to(device);
  Tensor c = full({m, n}, 7.0, dtype, device), sums = full({m}, 7.0, dtype, device);
  const TensorDesc a_desc = desc(a_dev), b_desc = desc(b_dev), c_desc = desc(c), sums_desc = desc(sums);
  Backend& backend = backend_for(device);
  backend.gemm(a_desc, b_desc, c_desc, GemmEpilogue{.a_row_sums = &sums_desc}, backend.default_stream());
  backend.synchronize(backend.default_stream());
  const std::vector<double> got_c = c.to(kCPU).to(DType::Float64).to_vector<double>();
  const std::vector<double> got_sums = sums.to(kCPU).to(DType::Float64).to_vector<double>();
  const double tolerance = dtype == DType::Float32 ? 1e-5 : 3e-2;  // relative to max(1, |value|)
  for (std::int64_t i = 0; i < m; ++i) {
    double row = 0.0;
    for (std::int64_t p = 0; p < k; ++p) row += a[static_cast<std::size_t>(i * k + p)];
    EXPECT_NEAR(got_sums[static_cast<std::size_t>(i)], row, tolerance * std::max(1.0, std::abs(row)))
        << what << ": row sum " << i;
    for (std::int64_t j = 0; j < n; ++j) {
      double dot = 0.0;
      for (std::int64_t p = 0; p < k; ++p) {
        dot += a[static_cast<std::size_t>(i * k + p)] * b[static_cast<std::size_t>(p * n + j)];
      }
      EXPECT_NEAR(got_c[static_cast<std::size_t>(i * n + j)], dot, tolerance * std::max(1.0, std::abs(dot)))
          << what << ": C[" << i << ", " << j << "]";
    }
  }
}

}  // namespace

TEST(GemmRowSums, EveryBackendWritesTheRowSumsOfARowMajorOrTransposedA) {
  const std::vector<Device> devices = present_devices();
  ASSERT_GE(devices.size(), 2u) << "cpu and sim are always registered";
  Generator gen(3);
  for (DType dtype : {DType::Float32, DType::BFloat16, DType::Float16}) {
    // The seed's shapes: the second layer's weight gradient (m = 10 classes, k = batch 64) and
    // the first's (m = 256); an odd m and k besides.
    for (const auto& [m, k, n] : std::vector<std::array<std::int64_t, 3>>{{10, 64, 256}, {256, 64, 40}, {7, 13, 5}}) {
      const Tensor b = rand({k, n}, gen, -1.0, 1.0).to(dtype);
      const Tensor a_rows = rand({m, k}, gen, -1.0, 1.0).to(dtype);
      const Tensor a_transposed = rand({k, m}, gen, -1.0, 1.0).to(dtype).t();  // g^T, as linear's backward
      for (Device device : devices) {
        check_row_sums(device, dtype, a_rows, b);
        check_row_sums(device, dtype, a_transposed, b);
      }
    }
  }
}

TEST(GemmRowSums, AnEmptyProductGivesZeroSumsAndNoColumnsStillGivesTheSums) {
  for (Device device : present_devices()) {
    Generator gen(5);
    check_row_sums(device, DType::Float32, rand({4, 0}, gen), rand({0, 3}, gen));      // k = 0: C and sums 0
    check_row_sums(device, DType::Float32, rand({4, 6}, gen), rand({6, 0}, gen));      // n = 0: C empty
    check_row_sums(device, DType::Float32, rand({6, 4}, gen).t(), rand({6, 0}, gen));  // the same, transposed
  }
}

TEST(GemmRowSums, AStridedAOrABiasBesideTheSumsIsAValueErrorNamingTheProblem) {
  for (Device device : present_devices()) {
    Backend& backend = backend_for(device);
    const Tensor wide = zeros({4, 10}, DType::Float32, device);
    const Tensor a = wide.slice(1, 0, 6);  // [4, 6] with row stride 10
    const Tensor b = zeros({6, 3}, DType::Float32, device), c = zeros({4, 3}, DType::Float32, device);
    const Tensor sums = zeros({4}, DType::Float32, device), bias = zeros({3}, DType::Float32, device);
    const TensorDesc a_desc = desc(a), b_desc = desc(b), c_desc = desc(c), sums_desc = desc(sums),
                     bias_desc = desc(bias);
    try {
      backend.gemm(a_desc, b_desc, c_desc, GemmEpilogue{.a_row_sums = &sums_desc}, backend.default_stream());
      ADD_FAILURE() << "no error for a strided A on " << device.to_string();
    } catch (const ValueError& error) {
      EXPECT_NE(std::string(error.what()).find("strides [10, 1]"), std::string::npos) << error.what();
    }
    const TensorDesc dense = desc(zeros({4, 6}, DType::Float32, device));
    EXPECT_THROW(backend.gemm(dense, b_desc, c_desc, GemmEpilogue{.bias = &bias_desc, .a_row_sums = &sums_desc},
                              backend.default_stream()),
                 ValueError)
        << device.to_string();
  }
}
