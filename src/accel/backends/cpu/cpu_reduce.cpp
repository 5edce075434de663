// Reductions over the [outer, reduced, inner] decomposition: sum, argmax, log_softmax, and the
// fused softmax + cross-entropy (llm.c's fused classifier: one pass forward, one backward).
// 16-bit types accumulate in float32, as PyTorch's CPU kernels do.
#include <cmath>
#include <limits>
#include <string>

#include "accel/backends/cpu/cpu_backend.h"
#include "accel/backends/kernel_errors.h"
#include "accel/core/error.h"
#include "accel/core/scalar_types.h"

namespace accel::cpu {
namespace {

struct Layout {
  std::int64_t outer, reduced, inner;
};
Layout layout_of(const TensorDesc& in) { return {in.size(0), in.size(1), in.size(2)}; }

template <typename T>
void sum_kernel(const TensorDesc& in_d, const TensorDesc& out_d) {
  using C = compute_t<T>;
  const auto [outer, reduced, inner] = layout_of(in_d);
  const T* in = in_d.ptr<const T>();
  T* out = out_d.ptr<T>();
  const std::int64_t n = outer * reduced * inner;
  if (inner == 1) {
#pragma omp parallel for if (n >= kParallelThreshold)
    for (std::int64_t o = 0; o < outer; ++o) {
      const T* row = in + o * reduced;
      C acc = 0;
#pragma omp simd reduction(+ : acc)
      for (std::int64_t r = 0; r < reduced; ++r) acc += load(row[r]);
      out[o] = store<T>(acc);
    }
    return;
  }
#pragma omp parallel for if (n >= kParallelThreshold)
  for (std::int64_t o = 0; o < outer; ++o) {
    if constexpr (std::is_same_v<T, C>) {  // accumulate in the output row itself
      T* dst = out + o * inner;
      for (std::int64_t i = 0; i < inner; ++i) dst[i] = 0;
      for (std::int64_t r = 0; r < reduced; ++r) {
        const T* src = in + (o * reduced + r) * inner;
#pragma omp simd
        for (std::int64_t i = 0; i < inner; ++i) dst[i] += src[i];
      }
    } else {
      std::vector<C> acc(static_cast<std::size_t>(inner), C(0));
      for (std::int64_t r = 0; r < reduced; ++r) {
        const T* src = in + (o * reduced + r) * inner;
        for (std::int64_t i = 0; i < inner; ++i) acc[static_cast<std::size_t>(i)] += load(src[i]);
      }
      for (std::int64_t i = 0; i < inner; ++i) out[o * inner + i] = store<T>(acc[static_cast<std::size_t>(i)]);
    }
  }
}

}  // namespace

void CpuBackend::sum(const TensorDesc& in, const TensorDesc& out, const Stream&) {
  if (in.dtype == DType::Int64) return sum_kernel<std::int64_t>(in, out);
  dispatch_floating(in.dtype, "sum", [&]<typename T>() { sum_kernel<T>(in, out); });
}

void CpuBackend::argmax(const TensorDesc& in_d, const TensorDesc& out_d, const Stream&) {
  const auto [outer, reduced, inner] = layout_of(in_d);
  std::int64_t* out = out_d.ptr<std::int64_t>();
  dispatch_arithmetic(in_d.dtype, "argmax", [&]<typename T>() {
    for (std::int64_t o = 0; o < outer; ++o) {
      for (std::int64_t i = 0; i < inner; ++i) {
        const T* base = in_d.ptr<const T>() + o * reduced * inner + i;
        std::int64_t best = 0;
        auto best_value = load(base[0]);
        for (std::int64_t r = 1; r < reduced; ++r) {
          const auto v = load(base[r * inner]);
          // NaN counts as the maximum, as in PyTorch (v != v: NaN; never for integers).
          if (v > best_value || (v != v && best_value == best_value)) {
            best_value = v;
            best = r;
          }
        }
        out[o * inner + i] = best;
      }
    }
  });
}

void CpuBackend::log_softmax(const TensorDesc& in_d, const TensorDesc& out_d, const Stream&) {
  const auto [outer, reduced, inner] = layout_of(in_d);
  dispatch_floating(in_d.dtype, "log_softmax", [&]<typename T>() {
    using C = compute_t<T>;
#pragma omp parallel for if (outer * reduced * inner >= kParallelThreshold)
    for (std::int64_t o = 0; o < outer; ++o) {
      for (std::int64_t i = 0; i < inner; ++i) {
        const T* x = in_d.ptr<const T>() + o * reduced * inner + i;
        T* y = out_d.ptr<T>() + o * reduced * inner + i;
        C max_value = -std::numeric_limits<C>::infinity();
        for (std::int64_t r = 0; r < reduced; ++r) max_value = std::max(max_value, load(x[r * inner]));
        C total = 0;
        for (std::int64_t r = 0; r < reduced; ++r) total += std::exp(load(x[r * inner]) - max_value);
        const C log_total = std::log(total) + max_value;
        for (std::int64_t r = 0; r < reduced; ++r) y[r * inner] = store<T>(load(x[r * inner]) - log_total);
      }
    }
  });
}

void CpuBackend::log_softmax_backward(const TensorDesc& grad_d, const TensorDesc& out_d, const TensorDesc& dst_d,
                                      const Stream&) {
  const auto [outer, reduced, inner] = layout_of(out_d);
  dispatch_floating(out_d.dtype, "log_softmax_backward", [&]<typename T>() {
    using C = compute_t<T>;
    const T* grad = grad_d.ptr<const T>();
    const T* out = out_d.ptr<const T>();
    T* dst = dst_d.ptr<T>();
#pragma omp parallel for if (outer * reduced * inner >= kParallelThreshold)
    for (std::int64_t o = 0; o < outer; ++o) {
      for (std::int64_t i = 0; i < inner; ++i) {
        const std::int64_t base = o * reduced * inner + i;
        C total = 0;
        for (std::int64_t r = 0; r < reduced; ++r) total += load(grad[base + r * inner]);
        for (std::int64_t r = 0; r < reduced; ++r) {
          const std::int64_t at = base + r * inner;
          dst[at] = store<T>(load(grad[at]) - std::exp(load(out[at])) * total);
        }
      }
    }
  });
}

void CpuBackend::softmax_cross_entropy(const TensorDesc& logits_d, const TensorDesc& targets_d,
                                       const TensorDesc& probs_d, const TensorDesc& loss_d, const Stream& stream) {
  const std::int64_t rows = logits_d.size(0), cols = logits_d.size(1);
  const std::int64_t* targets = targets_d.ptr<const std::int64_t>();
  dispatch_floating(logits_d.dtype, "cross_entropy", [&]<typename T>() {
    using C = compute_t<T>;
    double total = 0.0;
    std::int64_t bad_row = -1;
#pragma omp parallel for reduction(+ : total) reduction(max : bad_row) if (rows * cols >= kParallelThreshold)
    for (std::int64_t r = 0; r < rows; ++r) {
      const T* x = logits_d.ptr<const T>() + r * cols;
      T* p = probs_d.ptr<T>() + r * cols;
      C max_value = -std::numeric_limits<C>::infinity();
      for (std::int64_t c = 0; c < cols; ++c) max_value = std::max(max_value, load(x[c]));
      C sum = 0;
      if constexpr (std::is_same_v<T, C>) {  // keep exp(x - max) in probs, then scale in place
        for (std::int64_t c = 0; c < cols; ++c) {
          p[c] = std::exp(x[c] - max_value);
          sum += p[c];
        }
        const C inv = C(1) / sum;
        for (std::int64_t c = 0; c < cols; ++c) p[c] *= inv;
      } else {  // a 16-bit type would round exp(x - max) before the scaling: compute it twice
        for (std::int64_t c = 0; c < cols; ++c) sum += std::exp(load(x[c]) - max_value);
        const C inv = C(1) / sum;
        for (std::int64_t c = 0; c < cols; ++c) p[c] = store<T>(std::exp(load(x[c]) - max_value) * inv);
      }
      const std::int64_t target = targets[r];
      if (target < 0 || target >= cols) {  // recorded, never read out of bounds
        bad_row = std::max(bad_row, r);
        continue;
      }
      // -log softmax[target] = log(sum) + max - x[target]
      total += static_cast<double>(std::log(sum) + max_value - load(x[target]));
    }
    *loss_d.ptr<T>() = store<T>(rows ? static_cast<C>(total / static_cast<double>(rows)) : std::nanf(""));
    if (bad_row >= 0) {
      record_kernel_error(target_out_of_range_message(targets[bad_row], bad_row, cols));
    }
  });
  synchronize(stream);  // the CPU's calls are synchronous: a recorded error is raised here
}

void CpuBackend::softmax_cross_entropy_backward(const TensorDesc& probs_d, const TensorDesc& targets_d,
                                                const TensorDesc& grad_loss_d, const TensorDesc& dlogits_d,
                                                const Stream&) {
  const std::int64_t rows = probs_d.size(0), cols = probs_d.size(1);
  const std::int64_t* targets = targets_d.ptr<const std::int64_t>();
  dispatch_floating(probs_d.dtype, "cross_entropy_backward", [&]<typename T>() {
    using C = compute_t<T>;
    const C scale = load(*grad_loss_d.ptr<const T>()) / static_cast<C>(rows);
#pragma omp parallel for if (rows * cols >= kParallelThreshold)
    for (std::int64_t r = 0; r < rows; ++r) {
      const T* p = probs_d.ptr<const T>() + r * cols;
      T* d = dlogits_d.ptr<T>() + r * cols;
      const std::int64_t target = targets[r];
#pragma omp simd
      for (std::int64_t c = 0; c < cols; ++c) d[c] = store<T>(load(p[c]) * scale - (c == target ? scale : C(0)));
    }
  });
}

}  // namespace accel::cpu
