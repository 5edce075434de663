#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "accel/core/device.h"
#include "accel/core/dtype.h"
#include "accel/core/error.h"
#include "accel/core/half.h"
#include "accel/core/shape.h"

using namespace accel;

TEST(DType, NamesSizesAndParsingRoundTrip) {
  for (DType d :
       {DType::Float32, DType::Float16, DType::BFloat16, DType::Int64, DType::Int32, DType::UInt8, DType::Bool}) {
    EXPECT_EQ(parse_dtype(dtype_name(d)), d);
  }
  EXPECT_EQ(element_size(DType::Float32), 4u);
  EXPECT_EQ(element_size(DType::BFloat16), 2u);
  EXPECT_EQ(element_size(DType::Int64), 8u);
  EXPECT_EQ(element_size(DType::Bool), 1u);
  EXPECT_EQ(parse_dtype("half"), DType::Float16);
  EXPECT_TRUE(is_floating_point(DType::BFloat16));
  EXPECT_FALSE(is_floating_point(DType::Int32));
}

TEST(DType, UnknownNameListsTheValidOnes) {
  try {
    parse_dtype("float64x");
    FAIL() << "expected DTypeError";
  } catch (const DTypeError& e) {
    EXPECT_NE(std::string(e.what()).find("float64x"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("bfloat16"), std::string::npos);
  }
}

TEST(Shape, NumelStridesAndPrinting) {
  const Shape s{2, 3, 4};
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.contiguous_strides(), (std::vector<std::int64_t>{12, 4, 1}));
  EXPECT_EQ(s.to_string(), "[2, 3, 4]");
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_EQ(Shape({0, 5}).numel(), 0);
  EXPECT_THROW(Shape({2, -3}), ShapeError);
}

// Size products are checked: a shape whose element count (or stride span) does not fit in
// int64 is a ShapeError naming it, not a wrapped count (zeros({2^32, 2^32}) used to build a
// 0-byte tensor that select() then read past).
TEST(Shape, SizeProductsThatOverflowAreShapeErrors) {
  constexpr std::int64_t k2to32 = std::int64_t{1} << 32;
  try {
    Shape({k2to32, k2to32});
    ADD_FAILURE() << "no error";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[4294967296, 4294967296]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Shape({0, std::int64_t{1} << 40, std::int64_t{1} << 40}),
               ShapeError);  // empty, but its strides overflow
  EXPECT_EQ(Shape({std::int64_t{1} << 31, std::int64_t{1} << 31}).numel(), std::int64_t{1} << 62);
}

TEST(Shape, BroadcastFollowsNumpyRules) {
  EXPECT_EQ(broadcast_shapes(Shape{64, 256}, Shape{256}, "add"), (Shape{64, 256}));
  EXPECT_EQ(broadcast_shapes(Shape{3, 1, 5}, Shape{4, 1}, "add"), (Shape{3, 4, 5}));
  EXPECT_EQ(broadcast_shapes(Shape{}, Shape{2, 2}, "add"), (Shape{2, 2}));
  try {
    broadcast_shapes(Shape{64, 256}, Shape{10}, "add");
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("add"), std::string::npos);
    EXPECT_NE(message.find("[64, 256]"), std::string::npos);
    EXPECT_NE(message.find("[10]"), std::string::npos);
  }
}

TEST(Shape, NormalizeDimAcceptsNegativeAndRejectsOutOfRange) {
  EXPECT_EQ(normalize_dim(-1, 3, "sum"), 2u);
  EXPECT_EQ(normalize_dim(0, 3, "sum"), 0u);
  EXPECT_THROW(normalize_dim(3, 3, "sum"), ShapeError);
  EXPECT_THROW(normalize_dim(-4, 3, "sum"), ShapeError);
}

TEST(Device, ParsesAndPrints) {
  EXPECT_EQ(Device("cpu"), kCPU);
  EXPECT_EQ(Device("cuda"), Device(DeviceType::CUDA, 0));
  EXPECT_EQ(Device("cuda:3").index, 3);
  EXPECT_EQ(Device("cuda:3").to_string(), "cuda:3");
  EXPECT_EQ(kCPU.to_string(), "cpu");
  for (const char* bad : {"gpu", "cuda:", "cuda:-1", "cuda:1x", "CPU", ""}) {
    EXPECT_THROW(Device{bad}, DeviceError) << bad;
  }
}

TEST(HalfPrecision, Float16ConversionsRoundToNearestEven) {
  EXPECT_EQ(float_to_half_bits(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half_bits(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half_bits(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half_bits(65520.0f), 0x7c00);               // rounds to infinity
  EXPECT_EQ(float_to_half_bits(5.9604645e-8f), 0x0001);          // smallest subnormal
  EXPECT_EQ(float_to_half_bits(1.0f + 1.0f / 2048.0f), 0x3c00);  // tie to even (down)
  EXPECT_EQ(float_to_half_bits(1.0f + 3.0f / 2048.0f), 0x3c02);  // tie to even (up)
  EXPECT_TRUE(std::isnan(half_bits_to_float(float_to_half_bits(std::nanf("")))));
  for (std::uint32_t h = 0; h < 0x7c00; ++h) {  // every finite half survives a round trip
    ASSERT_EQ(float_to_half_bits(half_bits_to_float(static_cast<std::uint16_t>(h))), h);
  }
}

TEST(HalfPrecision, BFloat16ConversionsRoundToNearestEven) {
  EXPECT_EQ(float_to_bfloat16_bits(1.0f), 0x3f80);
  EXPECT_EQ(bfloat16_bits_to_float(0x3f80), 1.0f);
  EXPECT_EQ(float_to_bfloat16_bits(1.00390625f), 0x3f80);  // halfway: to even
  EXPECT_EQ(float_to_bfloat16_bits(1.01171875f), 0x3f82);  // halfway: to even (up)
  EXPECT_EQ(float_to_bfloat16_bits(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_TRUE(std::isnan(bfloat16_bits_to_float(float_to_bfloat16_bits(std::nanf("")))));
}
