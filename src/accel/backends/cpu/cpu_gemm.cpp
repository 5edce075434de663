// GEMM through oneDNN's sgemm. Measured on this project's 2-core Xeon (Sapphire Rapids):
// Debian's OpenBLAS 0.3.21 does not know the CPU, falls back to its Prescott (SSE3) kernels
// and reaches 33-57 GFLOP/s on the seed's 64x784x256 product; oneDNN's JIT AVX-512 kernels
// reach 270-300 GFLOP/s on the same call (docs/design.md, "Why oneDNN").
#include <dnnl.h>

#include <string>

#include "accel/backends/cpu/cpu_backend.h"
#include "accel/core/error.h"

namespace accel::cpu {

void CpuBackend::gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                      float alpha, const float* a, std::int64_t lda, const float* b,
                      std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  const dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha,
                                          a, lda, b, ldb, beta, c, ldc);
  if (status != dnnl_success) {
    throw Error("dnnl_sgemm failed with status " + std::to_string(static_cast<int>(status)) +
                " for m=" + std::to_string(m) + " n=" + std::to_string(n) +
                " k=" + std::to_string(k));
  }
}

void CpuBackend::broadcast_rows(const float* row, float* out, std::int64_t rows,
                                std::int64_t cols) {
#pragma omp parallel for if (rows * cols >= kParallelThreshold)
  for (std::int64_t r = 0; r < rows; ++r) {
    float* dst = out + r * cols;
#pragma omp simd
    for (std::int64_t c = 0; c < cols; ++c) dst[c] = row[c];
  }
}

}  // namespace accel::cpu
