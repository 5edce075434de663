// Reductions over the [outer, reduced, inner] decomposition: sum, argmax, log_softmax, and the
// fused softmax + cross-entropy (llm.c's fused classifier: one pass forward, one backward).
#include <cmath>
#include <limits>
#include <string>

#include "accel/backends/cpu/cpu_backend.h"
#include "accel/core/error.h"

namespace accel::cpu {
namespace {

template <typename T>
void sum_kernel(const T* in, std::int64_t outer, std::int64_t reduced, std::int64_t inner, T* out) {
  const std::int64_t n = outer * reduced * inner;
  if (inner == 1) {
#pragma omp parallel for if (n >= kParallelThreshold)
    for (std::int64_t o = 0; o < outer; ++o) {
      const T* row = in + o * reduced;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (std::int64_t r = 0; r < reduced; ++r) acc += row[r];
      out[o] = acc;
    }
    return;
  }
#pragma omp parallel for if (n >= kParallelThreshold)
  for (std::int64_t o = 0; o < outer; ++o) {
    T* dst = out + o * inner;
    for (std::int64_t i = 0; i < inner; ++i) dst[i] = 0;
    for (std::int64_t r = 0; r < reduced; ++r) {
      const T* src = in + (o * reduced + r) * inner;
#pragma omp simd
      for (std::int64_t i = 0; i < inner; ++i) dst[i] += src[i];
    }
  }
}

}  // namespace

void CpuBackend::sum(const void* in, DType dtype, std::int64_t outer, std::int64_t reduced, std::int64_t inner,
                     void* out) {
  if (dtype == DType::Float32) {
    sum_kernel(static_cast<const float*>(in), outer, reduced, inner, static_cast<float*>(out));
  } else if (dtype == DType::Int64) {
    sum_kernel(static_cast<const std::int64_t*>(in), outer, reduced, inner, static_cast<std::int64_t*>(out));
  } else {
    throw DTypeError("cpu sum kernel: dtype " + std::string(dtype_name(dtype)) +
                     " is not supported (float32 or int64)");
  }
}

void CpuBackend::argmax(const float* in, std::int64_t outer, std::int64_t reduced, std::int64_t inner,
                        std::int64_t* out) {
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < inner; ++i) {
      const float* base = in + o * reduced * inner + i;
      std::int64_t best = 0;
      float best_value = base[0];
      for (std::int64_t r = 1; r < reduced; ++r) {
        const float v = base[r * inner];
        // NaN counts as the maximum, as in PyTorch.
        if (v > best_value || (std::isnan(v) && !std::isnan(best_value))) {
          best_value = v;
          best = r;
        }
      }
      out[o * inner + i] = best;
    }
  }
}

void CpuBackend::log_softmax(const float* in, std::int64_t outer, std::int64_t reduced, std::int64_t inner,
                             float* out) {
#pragma omp parallel for if (outer * reduced * inner >= kParallelThreshold)
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < inner; ++i) {
      const float* x = in + o * reduced * inner + i;
      float* y = out + o * reduced * inner + i;
      float max_value = -std::numeric_limits<float>::infinity();
      for (std::int64_t r = 0; r < reduced; ++r) max_value = std::max(max_value, x[r * inner]);
      float total = 0.0f;
      for (std::int64_t r = 0; r < reduced; ++r) total += std::exp(x[r * inner] - max_value);
      const float log_total = std::log(total) + max_value;
      for (std::int64_t r = 0; r < reduced; ++r) y[r * inner] = x[r * inner] - log_total;
    }
  }
}

void CpuBackend::log_softmax_backward(const float* grad, const float* out, std::int64_t outer, std::int64_t reduced,
                                      std::int64_t inner, float* dst) {
#pragma omp parallel for if (outer * reduced * inner >= kParallelThreshold)
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < inner; ++i) {
      const std::int64_t base = o * reduced * inner + i;
      float total = 0.0f;
      for (std::int64_t r = 0; r < reduced; ++r) total += grad[base + r * inner];
      for (std::int64_t r = 0; r < reduced; ++r) {
        const std::int64_t at = base + r * inner;
        dst[at] = grad[at] - std::exp(out[at]) * total;
      }
    }
  }
}

void CpuBackend::softmax_cross_entropy(const float* logits, const std::int64_t* targets, std::int64_t rows,
                                       std::int64_t cols, float* probs, float* loss) {
  for (std::int64_t r = 0; r < rows; ++r) {
    if (targets[r] < 0 || targets[r] >= cols) {
      throw ValueError("cross_entropy: target " + std::to_string(targets[r]) + " at row " + std::to_string(r) +
                       " is out of range for " + std::to_string(cols) + " classes (valid: 0 to " +
                       std::to_string(cols - 1) + ")");
    }
  }
  double total = 0.0;
#pragma omp parallel for reduction(+ : total) if (rows * cols >= kParallelThreshold)
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * cols;
    float* p = probs + r * cols;
    float max_value = -std::numeric_limits<float>::infinity();
    for (std::int64_t c = 0; c < cols; ++c) max_value = std::max(max_value, x[c]);
    float sum = 0.0f;
    for (std::int64_t c = 0; c < cols; ++c) {
      p[c] = std::exp(x[c] - max_value);
      sum += p[c];
    }
    const float inv = 1.0f / sum;
    for (std::int64_t c = 0; c < cols; ++c) p[c] *= inv;
    // -log softmax[target] = log(sum) + max - x[target]
    total += static_cast<double>(std::log(sum) + max_value - x[targets[r]]);
  }
  *loss = rows ? static_cast<float>(total / static_cast<double>(rows)) : std::nanf("");
}

void CpuBackend::softmax_cross_entropy_backward(const float* probs, const std::int64_t* targets, std::int64_t rows,
                                                std::int64_t cols, const float* grad_loss, float* dlogits) {
  const float scale = *grad_loss / static_cast<float>(rows);
#pragma omp parallel for if (rows * cols >= kParallelThreshold)
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* p = probs + r * cols;
    float* d = dlogits + r * cols;
#pragma omp simd
    for (std::int64_t c = 0; c < cols; ++c) d[c] = p[c] * scale;
    d[targets[r]] -= scale;
  }
}

}  // namespace accel::cpu
