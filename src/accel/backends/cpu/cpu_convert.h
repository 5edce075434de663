// Contiguous float32 <-> bfloat16 / float16 conversion, 8 elements per instruction where the
// CPU has AVX2 and F16C (every CPU this project targets; -march=native turns them on). The
// compiler does not vectorise these conversions on its own (GCC 12 converts _Float16 one
// element at a time), and mixed precision converts every weight and activation each step.
// Results are bit-identical to the scalar conversions (round to nearest even; NaN stays NaN).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "accel/core/scalar_types.h"

namespace accel::cpu {

inline void convert_contiguous(const float* in, BFloat16* out, std::int64_t n) {
  std::int64_t i = 0;
#ifdef __AVX2__
  const __m256i lsb_mask = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i quiet = _mm256_set1_epi32(0x40);
  for (; i + 16 <= n; i += 16) {
    __m256i halves[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i x = _mm256_castps_si256(_mm256_loadu_ps(in + i + 8 * h));
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), lsb_mask);
      const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(bias, lsb)), 16);
      const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs_mask), inf);
      const __m256i quiet_nan = _mm256_or_si256(_mm256_srli_epi32(x, 16), quiet);
      halves[h] = _mm256_blendv_epi8(rounded, quiet_nan, nan);
    }
    // packus works within 128-bit lanes: restore the order afterwards.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(halves[0], halves[1]), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), packed);
  }
#endif
  for (; i < n; ++i) out[i] = BFloat16(in[i]);
}

inline void convert_contiguous(const BFloat16* in, float* out, std::int64_t n) {
  std::int64_t i = 0;
#ifdef __AVX2__
  for (; i + 8 <= n; i += 8) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
  }
#endif
  for (; i < n; ++i) out[i] = static_cast<float>(in[i]);
}

inline void convert_contiguous(const float* in, Float16* out, std::int64_t n) {
  std::int64_t i = 0;
#ifdef __F16C__
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
#endif
  for (; i < n; ++i) out[i] = static_cast<Float16>(in[i]);
}

inline void convert_contiguous(const Float16* in, float* out, std::int64_t n) {
  std::int64_t i = 0;
#ifdef __F16C__
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  }
#endif
  for (; i < n; ++i) out[i] = static_cast<float>(in[i]);
}

// Whether convert_contiguous exists for S -> D.
template <typename S, typename D>
inline constexpr bool kFastConversion = (std::is_same_v<S, float> &&
                                         (std::is_same_v<D, BFloat16> || std::is_same_v<D, Float16>)) ||
                                        (std::is_same_v<D, float> &&
                                         (std::is_same_v<S, BFloat16> || std::is_same_v<S, Float16>));

}  // namespace accel::cpu
