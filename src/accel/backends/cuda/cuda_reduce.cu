// Reductions on the GPU over the [outer, reduced, inner] layout (device_math.h): sum, argmax,
// log_softmax and its gradient, and the fused softmax + cross-entropy (forward and backward).
// 16-bit types accumulate in float32, float64 in float64, as on the CPU.
#include <cuda_runtime.h>

#include <cfloat>
#include <string>

#include "accel/backends/cuda/cuda_kernels.h"
#include "accel/backends/cuda/cuda_types.cuh"

namespace accel::cuda_backend {
namespace {

ReduceLayout layout_of(const TensorDesc& in) { return {in.size(0), in.size(1), in.size(2)}; }

// One thread per output element: fine while `reduced` is short or `inner` gives many outputs.
template <typename T, typename Acc>
__global__ void sum_per_output_kernel(const T* in, T* out, ReduceLayout l) {
  ACCEL_GRID_STRIDE(o, l.outputs()) {
    const T* x = in + l.first_input(o);
    Acc acc = 0;
    for (std::int64_t r = 0; r < l.reduced; ++r) acc += static_cast<Acc>(load(x[r * l.inner]));
    out[o] = convert_to<T>(acc);
  }
}

// Sums each thread's `value` over the block in a fixed order; the total is in partial[0].
template <typename Acc>
__device__ void block_sum(Acc* partial, Acc value) {
  partial[threadIdx.x] = value;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
}

// One block per output row when inner == 1 (a whole-tensor sum, the loss's mean): the block's
// threads stride over the row and meet in shared memory.
template <typename T, typename Acc>
__global__ void sum_rows_kernel(const T* in, T* out, std::int64_t reduced) {
  __shared__ Acc partial[kThreads];
  const T* x = in + static_cast<std::int64_t>(blockIdx.x) * reduced;
  Acc acc = 0;
  for (std::int64_t r = threadIdx.x; r < reduced; r += blockDim.x) acc += static_cast<Acc>(load(x[r]));
  block_sum(partial, acc);
  if (threadIdx.x == 0) out[blockIdx.x] = convert_to<T>(partial[0]);
}

template <typename T>
__global__ void argmax_kernel(const T* in, std::int64_t* out, ReduceLayout l) {
  ACCEL_GRID_STRIDE(o, l.outputs()) {
    const T* x = in + l.first_input(o);
    std::int64_t best = 0;
    auto best_value = load(x[0]);
    for (std::int64_t r = 1; r < l.reduced; ++r) {
      const auto v = load(x[r * l.inner]);
      // NaN counts as the maximum, as in PyTorch (v != v: NaN; never for integers).
      if (v > best_value || (v != v && best_value == best_value)) {
        best_value = v;
        best = r;
      }
    }
    out[o] = best;
  }
}

template <typename T>
__global__ void log_softmax_kernel(const T* in, T* out, ReduceLayout l) {
  using C = compute_t<T>;
  ACCEL_GRID_STRIDE(o, l.outputs()) {
    const std::int64_t base = l.first_input(o);
    const T* x = in + base;
    T* y = out + base;
    C max_value = -INFINITY;
    for (std::int64_t r = 0; r < l.reduced; ++r) max_value = fmax(max_value, load(x[r * l.inner]));
    C total = 0;
    for (std::int64_t r = 0; r < l.reduced; ++r) total += exp(load(x[r * l.inner]) - max_value);
    const C log_total = log(total) + max_value;
    for (std::int64_t r = 0; r < l.reduced; ++r) y[r * l.inner] = store<T>(load(x[r * l.inner]) - log_total);
  }
}

template <typename T>
__global__ void log_softmax_backward_kernel(const T* grad, const T* out, T* dst, ReduceLayout l) {
  using C = compute_t<T>;
  ACCEL_GRID_STRIDE(o, l.outputs()) {
    const std::int64_t base = l.first_input(o);
    C total = 0;
    for (std::int64_t r = 0; r < l.reduced; ++r) total += load(grad[base + r * l.inner]);
    for (std::int64_t r = 0; r < l.reduced; ++r) {
      const std::int64_t at = base + r * l.inner;
      dst[at] = store<T>(load(grad[at]) - exp(load(out[at])) * total);
    }
  }
}

// A row per thread over the grid (probabilities and -log p[target]); each block sums its
// losses in double, and the last block to finish sums the blocks' partials (ReduceScratch), in
// a fixed order for a given row count, so the mean is deterministic. At batch 4096 this is 16
// blocks, where one block took 16 rows per thread one after another.
template <typename T>
__global__ void softmax_cross_entropy_kernel(const T* logits, const std::int64_t* targets, T* probs, T* loss,
                                             std::int64_t rows, std::int64_t cols, ReduceScratch* scratch,
                                             KernelErrorRecord* error) {
  using C = compute_t<T>;
  __shared__ double partial[kThreads];
  __shared__ bool last_block;
  double total = 0.0;
  ACCEL_GRID_STRIDE(r, rows) {
    const T* x = logits + r * cols;
    T* p = probs + r * cols;
    C max_value = -INFINITY;
    for (std::int64_t c = 0; c < cols; ++c) max_value = fmax(max_value, load(x[c]));
    C sum = 0;
    for (std::int64_t c = 0; c < cols; ++c) sum += exp(load(x[c]) - max_value);
    const C inv = C(1) / sum;
    for (std::int64_t c = 0; c < cols; ++c) p[c] = store<T>(exp(load(x[c]) - max_value) * inv);
    const std::int64_t target = targets[r];
    if (target < 0 || target >= cols) {  // recorded (cuda_kernels.h), never read out of bounds
      if (atomicCAS(&error->code, 0, kKernelErrorTarget) == 0) {
        error->row = r;
        error->value = target;
        error->limit = cols;
      }
      continue;
    }
    total += static_cast<double>(log(sum) + max_value - load(x[target]));  // -log softmax[target]
  }
  block_sum(partial, total);
  if (threadIdx.x == 0) {
    scratch->partial[blockIdx.x] = partial[0];
    __threadfence();  // the partial is visible to the last block before it counts this one
    last_block = atomicAdd(&scratch->blocks_done, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  double blocks_total = 0.0;
  const volatile double* partials = scratch->partial;  // written by other blocks: not from a cache
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) blocks_total += partials[b];
  block_sum(partial, blocks_total);
  if (threadIdx.x == 0) {
    *loss = store<T>(rows ? static_cast<C>(partial[0] / static_cast<double>(rows)) : C(NAN));
    scratch->blocks_done = 0;
  }
}

template <typename T>
__global__ void softmax_cross_entropy_backward_kernel(const T* probs, const std::int64_t* targets, const T* grad_loss,
                                                      T* dlogits, std::int64_t rows, std::int64_t cols) {
  using C = compute_t<T>;
  const C scale = load(*grad_loss) / static_cast<C>(rows);
  ACCEL_GRID_STRIDE(i, rows * cols) {
    const std::int64_t c = i % cols;
    dlogits[i] = store<T>(load(probs[i]) * scale - (c == targets[i / cols] ? scale : C(0)));
  }
}

}  // namespace

void launch_sum(const TensorDesc& in, const TensorDesc& out, cudaStream_t stream) {
  const ReduceLayout l = layout_of(in);
  if (l.outputs() == 0) return;
  const auto run = [&](auto tag) {
    using T = decltype(tag);
    using Acc = std::conditional_t<std::is_same_v<T, double> || std::is_integral_v<T>, T, float>;
    if (l.inner == 1 && l.reduced >= 4 * kThreads) {
      sum_rows_kernel<T, Acc>
          <<<static_cast<unsigned>(l.outer), kThreads, 0, stream>>>(in.ptr<const T>(), out.ptr<T>(), l.reduced);
    } else {
      sum_per_output_kernel<T, Acc>
          <<<static_cast<unsigned>(blocks_for(l.outputs())), kThreads, 0, stream>>>(in.ptr<const T>(), out.ptr<T>(), l);
    }
  };
  if (in.dtype == DType::Int64) {
    run(std::int64_t{});
  } else {
    dispatch_floating(in.dtype, "sum", run);
  }
  check_launch("sum");
}

void launch_argmax(const TensorDesc& in, const TensorDesc& out, cudaStream_t stream) {
  const ReduceLayout l = layout_of(in);
  if (l.outputs() == 0) return;
  dispatch_arithmetic(in.dtype, "argmax", [&](auto tag) {
    using T = decltype(tag);
    argmax_kernel<T><<<static_cast<unsigned>(blocks_for(l.outputs())), kThreads, 0, stream>>>(
        in.ptr<const T>(), out.ptr<std::int64_t>(), l);
  });
  check_launch("argmax");
}

void launch_log_softmax(const TensorDesc& in, const TensorDesc& out, cudaStream_t stream) {
  const ReduceLayout l = layout_of(in);
  if (l.outputs() == 0) return;
  dispatch_floating(in.dtype, "log_softmax", [&](auto tag) {
    using T = decltype(tag);
    log_softmax_kernel<T>
        <<<static_cast<unsigned>(blocks_for(l.outputs())), kThreads, 0, stream>>>(in.ptr<const T>(), out.ptr<T>(), l);
  });
  check_launch("log_softmax");
}

void launch_log_softmax_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst,
                                 cudaStream_t stream) {
  const ReduceLayout l = layout_of(out);
  if (l.outputs() == 0) return;
  dispatch_floating(out.dtype, "log_softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    log_softmax_backward_kernel<T><<<static_cast<unsigned>(blocks_for(l.outputs())), kThreads, 0, stream>>>(
        grad.ptr<const T>(), out.ptr<const T>(), dst.ptr<T>(), l);
  });
  check_launch("log_softmax_backward");
}

void launch_softmax_cross_entropy(const TensorDesc& logits, const TensorDesc& targets, const TensorDesc& probs,
                                  const TensorDesc& loss, ReduceScratch* scratch, KernelErrorRecord* error,
                                  cudaStream_t stream) {
  const std::int64_t rows = logits.size(0), cols = logits.size(1);
  const auto blocks = static_cast<unsigned>(std::min<std::int64_t>(blocks_for(rows), kMaxReduceBlocks));
  dispatch_floating(logits.dtype, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    softmax_cross_entropy_kernel<T><<<blocks, kThreads, 0, stream>>>(logits.ptr<const T>(),
                                                                     targets.ptr<const std::int64_t>(), probs.ptr<T>(),
                                                                     loss.ptr<T>(), rows, cols, scratch, error);
  });
  check_launch("cross_entropy");
}

void launch_softmax_cross_entropy_backward(const TensorDesc& probs, const TensorDesc& targets,
                                           const TensorDesc& grad_loss, const TensorDesc& dlogits,
                                           cudaStream_t stream) {
  const std::int64_t rows = probs.size(0), cols = probs.size(1);
  if (rows * cols == 0) return;
  dispatch_floating(probs.dtype, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    softmax_cross_entropy_backward_kernel<T><<<static_cast<unsigned>(blocks_for(rows * cols)), kThreads, 0, stream>>>(
        probs.ptr<const T>(), targets.ptr<const std::int64_t>(), grad_loss.ptr<const T>(), dlogits.ptr<T>(), rows,
        cols);
  });
  check_launch("cross_entropy_backward");
}

}  // namespace accel::cuda_backend
