// GemmEpilogue::relu_mask on every present backend (cuBLASLt's RELU_AUX and DRELU_BGRAD on a
// GPU, the CPU's kernels elsewhere), called directly: the mask written in relu_mask.h's layout
// (a GPU run compares cuBLASLt's bits with C itself, so a layout of its own would fail here),
// and a mask read: the masked product against float64 loops, and its column sums.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../support/present_devices.h"
#include "accel/backends/relu_mask.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

using namespace accel;

namespace {

using accel::testing::present_devices;
using Shape3 = std::array<std::int64_t, 3>;  // m, k, n

// Relative to max(1, |value|): a few roundings of the dtype, float32's over sums of 784 terms.
double tolerance(DType dtype) { return dtype == DType::Float32 ? 1e-4 : 3e-2; }

// The product of a [m, k] and b [k, n] (row-major float64), plus the bias when given.
std::vector<double> product(const std::vector<double>& a, const std::vector<double>& b, const Shape3& s,
                            const std::vector<double>& bias = {}) {
  const auto [m, k, n] = s;
  std::vector<double> c(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double dot = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(j)];
      for (std::int64_t p = 0; p < k; ++p) {
        dot += a[static_cast<std::size_t>(i * k + p)] * b[static_cast<std::size_t>(p * n + j)];
      }
      c[static_cast<std::size_t>(i * n + j)] = dot;
    }
  }
  return c;
}

std::vector<double> host_values(const Tensor& t) { return t.to(kCPU).to(DType::Float64).to_vector<double>(); }

// The seed's first layer (batch 64, 784 -> 256), a width that pads its mask rows (200 bits in
// 256) and one just past a 128-bit row (130).
const std::vector<Shape3> kShapes{{64, 784, 256}, {5, 7, 200}, {3, 9, 130}};

}  // namespace

// relu_mask.h's layout spelled out: rows of 128 bits (16 bytes) for n = 10, element (r, c) at
// bit c % 8 of byte 16 r + c / 8, the padding 0.
TEST(GemmReluMask, TheLayoutIsABitPerElementInRowsOf128Bits) {
  EXPECT_EQ(relu_mask_row_bytes(10), 16);
  EXPECT_EQ(relu_mask_row_bytes(128), 16);
  EXPECT_EQ(relu_mask_row_bytes(129), 32);
  EXPECT_EQ(relu_mask_row_bytes(256), 32);                   // the seed's hidden layer
  const std::vector<float> c{0, 1, 0, 0, 0, 0, 0, 0, 0, 2,   // row 0: columns 1 and 9
                             3, 0, 0, 0, 0, 0, 0, 0, 4, 0};  // row 1: columns 0 and 8
  std::vector<std::uint8_t> want(32, 0);
  want[0] = 0x02, want[1] = 0x02, want[16] = 0x01, want[17] = 0x01;
  const auto byte = [&](std::int64_t r, std::int64_t b) {
    return relu_mask_byte(b, 10, [&](std::int64_t col) { return c[static_cast<std::size_t>(r * 10 + col)] > 0; });
  };
  for (std::int64_t r = 0; r < 2; ++r) {
    for (std::int64_t b = 0; b < 16; ++b)
      EXPECT_EQ(byte(r, b), want[static_cast<std::size_t>(r * 16 + b)]) << r << ", " << b;
  }
  EXPECT_TRUE(relu_mask_bit(want.data(), 16, 0, 9));
  EXPECT_FALSE(relu_mask_bit(want.data(), 16, 0, 8));
  EXPECT_TRUE(relu_mask_bit(want.data(), 16, 1, 8));
}

TEST(GemmReluMask, EveryBackendWritesTheMaskOfCsPositiveElementsInOneLayout) {
  Generator gen(11);
  for (DType dtype : {DType::Float32, DType::BFloat16, DType::Float16}) {
    for (const Shape3& s : kShapes) {
      const auto [m, k, n] = s;
      const Tensor a = rand({m, k}, gen, -1.0, 1.0).to(dtype), b = rand({k, n}, gen, -1.0, 1.0).to(dtype);
      const Tensor bias = rand({n}, gen, -0.5, 0.5).to(dtype);
      std::vector<double> want = product(host_values(a), host_values(b), s, host_values(bias));
      for (double& v : want) v = std::max(v, 0.0);
      const std::int64_t row_bytes = relu_mask_row_bytes(n);
      for (Device device : present_devices()) {
        const std::string what = std::string(dtype_name(dtype)) + " on " + device.to_string() + ", [" +
                                 std::to_string(m) + ", " + std::to_string(k) + "] x [" + std::to_string(k) + ", " +
                                 std::to_string(n) + "]";
        const Tensor a_dev = a.to(device), b_dev = b.to(device), bias_dev = bias.to(device);
        Tensor c = full({m, n}, 7.0, dtype, device), mask = full({m, row_bytes}, 0xAB, DType::UInt8, device);
        const TensorDesc bias_desc = desc(bias_dev), mask_desc = desc(mask);
        Backend& backend = backend_for(device);
        backend.gemm(desc(a_dev), desc(b_dev), desc(c),
                     GemmEpilogue{.bias = &bias_desc, .relu = true, .relu_mask = &mask_desc}, backend.default_stream());
        const std::vector<double> got = host_values(c);
        const std::vector<std::uint8_t> bits = mask.to(kCPU).to_vector<std::uint8_t>();
        int positive = 0;
        for (std::int64_t i = 0; i < m; ++i) {
          for (std::int64_t j = 0; j < n; ++j) {
            const double value = got[static_cast<std::size_t>(i * n + j)];
            const double expected = want[static_cast<std::size_t>(i * n + j)];
            EXPECT_NEAR(value, expected, tolerance(dtype) * std::max(1.0, expected))
                << what << ": C[" << i << ", " << j << "]";
            // The bit says whether C itself is positive: exact, whatever the rounding.
            EXPECT_EQ(relu_mask_bit(bits.data(), row_bytes, i, j), value > 0)
                << what << ": mask bit (" << i << ", " << j << ")";
            positive += value > 0;
          }
        }
        EXPECT_GT(positive, 0) << what;
        EXPECT_LT(positive, m * n) << what;  // both kinds of bits were checked
      }
    }
  }
}

TEST(GemmReluMask, EveryBackendAppliesAMaskAndWritesItsColumnSums) {
  Generator gen(12);
  for (DType dtype : {DType::Float32, DType::BFloat16, DType::Float16}) {
    for (const Shape3& s : kShapes) {
      const auto [m, k, n] = s;
      const Tensor a = rand({m, k}, gen, -1.0, 1.0).to(dtype), b = rand({k, n}, gen, -1.0, 1.0).to(dtype);
      // A mask of an irregular pattern, its padding bits set (they must not matter).
      const std::int64_t row_bytes = relu_mask_row_bytes(n);
      std::vector<std::uint8_t> bits(static_cast<std::size_t>(m * row_bytes), 0xFF);
      std::vector<double> want = product(host_values(a), host_values(b), s);
      for (std::int64_t i = 0; i < m; ++i) {
        for (std::int64_t j = 0; j < n; ++j) {
          if ((i * 7 + j * 3) % 5 != 0) continue;
          bits[static_cast<std::size_t>(i * row_bytes + j / 8)] &= static_cast<std::uint8_t>(~(1u << (j % 8)));
          want[static_cast<std::size_t>(i * n + j)] = 0.0;
        }
      }
      const Tensor mask_host = from_vector<std::uint8_t>(bits, {m, row_bytes});
      for (Device device : present_devices()) {
        const std::string what =
            std::string(dtype_name(dtype)) + " on " + device.to_string() + ", n " + std::to_string(n);
        const Tensor a_dev = a.to(device), b_dev = b.to(device), mask = mask_host.to(device);
        Tensor c = full({m, n}, 7.0, dtype, device), sums = full({n}, 7.0, dtype, device);
        const TensorDesc mask_desc = desc(mask), sums_desc = desc(sums);
        Backend& backend = backend_for(device);
        backend.gemm(desc(a_dev), desc(b_dev), desc(c),
                     GemmEpilogue{.relu_mask = &mask_desc, .bias_gradient = &sums_desc}, backend.default_stream());
        const std::vector<double> got = host_values(c), got_sums = host_values(sums);
        for (std::int64_t i = 0; i < m * n; ++i) {
          const double expected = want[static_cast<std::size_t>(i)];
          ASSERT_NEAR(got[static_cast<std::size_t>(i)], expected, tolerance(dtype) * std::max(1.0, std::abs(expected)))
              << what << ": C[" << i / n << ", " << i % n << "]";
        }
        // The sums of C as it came out (a 16-bit C is rounded, the sums are not summed from it).
        for (std::int64_t j = 0; j < n; ++j) {
          double expected = 0.0, magnitude = 0.0;
          for (std::int64_t i = 0; i < m; ++i) {
            expected += got[static_cast<std::size_t>(i * n + j)];
            magnitude += std::abs(got[static_cast<std::size_t>(i * n + j)]);
          }
          EXPECT_NEAR(got_sums[static_cast<std::size_t>(j)], expected, tolerance(dtype) * std::max(1.0, magnitude))
              << what << ": column sum " << j;
        }
      }
    }
  }
}

TEST(GemmReluMask, AnEmptyBatchGivesZeroColumnSums) {
  for (Device device : present_devices()) {
    const Tensor a = zeros({0, 4}, DType::Float32, device), b = ones({4, 3}, DType::Float32, device);
    Tensor c = zeros({0, 3}, DType::Float32, device), sums = full({3}, 7.0, DType::Float32, device);
    const Tensor mask = zeros({0, relu_mask_row_bytes(3)}, DType::UInt8, device);
    const TensorDesc mask_desc = desc(mask), sums_desc = desc(sums);
    Backend& backend = backend_for(device);
    backend.gemm(desc(a), desc(b), desc(c), GemmEpilogue{.relu_mask = &mask_desc, .bias_gradient = &sums_desc},
                 backend.default_stream());
    EXPECT_EQ(sums.to(kCPU).to_vector<float>(), std::vector<float>(3, 0.0f)) << device.to_string();
  }
}

TEST(GemmReluMask, AMaskOfTheWrongShapeOrBesideABiasIsAValueErrorNamingTheProblem) {
  for (Device device : present_devices()) {
    Backend& backend = backend_for(device);
    const Tensor a = zeros({4, 6}, DType::Float32, device), b = zeros({6, 3}, DType::Float32, device);
    const Tensor c = zeros({4, 3}, DType::Float32, device), bias = zeros({3}, DType::Float32, device);
    const Tensor short_mask = zeros({4, 8}, DType::UInt8, device), mask = zeros({4, 16}, DType::UInt8, device);
    const TensorDesc short_desc = desc(short_mask), mask_desc = desc(mask), bias_desc = desc(bias);
    try {
      backend.gemm(desc(a), desc(b), desc(c), GemmEpilogue{.relu = true, .relu_mask = &short_desc},
                   backend.default_stream());
      ADD_FAILURE() << "no error for a short mask on " << device.to_string();
    } catch (const ValueError& error) {
      EXPECT_NE(std::string(error.what()).find("uint8 [4, 16]"), std::string::npos) << error.what();
    }
    EXPECT_THROW(backend.gemm(desc(a), desc(b), desc(c), GemmEpilogue{.bias = &bias_desc, .relu_mask = &mask_desc},
                              backend.default_stream()),
                 ValueError)
        << device.to_string();
    EXPECT_THROW(
        backend.gemm(desc(a), desc(b), desc(c), GemmEpilogue{.bias_gradient = &bias_desc}, backend.default_stream()),
        ValueError)
        << device.to_string();
  }
}
