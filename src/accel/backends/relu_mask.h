// The ReLU mask a linear layer's forward GEMM leaves for its backward (GemmEpilogue::relu_mask):
// one bit per element of the GEMM's output C [m, n], set where the pre-activation was > 0, so
// the next layer's input-gradient GEMM can apply the ReLU's gradient itself (cuBLASLt's
// RELU_AUX forward and DRELU backward epilogues) instead of a kernel reading the activations.
// The layout is cuBLASLt's as far as its header says: it stores C column-major as [n, m] with a
// leading dimension in bits that is a multiple of 128 (AUX_LD), so each of our rows takes
// relu_mask_row_bytes(n) bytes (a multiple of 16). Element (r, c) is bit c % 8 of byte
// r * row_bytes + c / 8: the bit order within a byte (lowest first) is assumed, not documented,
// and the GPU run's GemmReluMask tests (tests/backends/gemm_relu_mask_test.cpp) check it
// against C. Our kernels write 0 padding bits; nothing reads them.
#pragma once

#include <cstdint>

#include "accel/core/host_device.h"

namespace accel {

inline constexpr std::int64_t kReluMaskRowBitAlignment = 128;  // cuBLASLt's AUX_LD: a multiple of 128

ACCEL_HD constexpr std::int64_t relu_mask_row_bytes(std::int64_t n) {
  return (n + kReluMaskRowBitAlignment - 1) / kReluMaskRowBitAlignment * (kReluMaskRowBitAlignment / 8);
}

// Byte `byte` of row r: the bits of columns 8 byte .. 8 byte + 7 of that row, from `positive(c)`
// (c < n), 0 past n. One writer per byte, so a kernel writes the mask without atomics.
template <typename Positive>
ACCEL_HD std::uint8_t relu_mask_byte(std::int64_t byte, std::int64_t n, Positive positive) {
  std::uint8_t bits = 0;
  for (int bit = 0; bit < 8; ++bit) {
    const std::int64_t c = byte * 8 + bit;
    if (c < n && positive(c)) bits = static_cast<std::uint8_t>(bits | (1u << bit));
  }
  return bits;
}

// Whether element (r, c) was positive, from a mask with rows of row_bytes bytes.
ACCEL_HD inline bool relu_mask_bit(const std::uint8_t* mask, std::int64_t row_bytes, std::int64_t r, std::int64_t c) {
  return (mask[r * row_bytes + c / 8] >> (c % 8)) & 1u;
}

}  // namespace accel
