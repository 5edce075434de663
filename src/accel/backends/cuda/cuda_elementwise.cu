// Elementwise CUDA kernels: fill, strided copy with dtype conversion, dropout's Philox mask,
// broadcasting binary ops, scalar and unary ops, ReLU's gradient, eq, and the GEMM epilogue
// cuBLASLt could not fuse (bias and ReLU, the ReLU mask written or applied). Every kernel is a
// grid-stride loop over its output.
#include <cuda_runtime.h>

#include <string>

#include "accel/backends/cuda/cuda_kernels.h"
#include "accel/backends/cuda/cuda_types.cuh"
#include "accel/backends/relu_mask.h"
#include "accel/core/philox.h"
#include "accel/core/pixels.h"

namespace accel::cuda_backend {

void check_launch(const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw DeviceError(std::string("CUDA kernel ") + kernel + " did not launch: " + cudaGetErrorName(status) + " (" +
                      cudaGetErrorString(status) + ")");
  }
}

namespace {

template <typename T>
__global__ void fill_kernel(T* out, T value, std::int64_t n) {
  ACCEL_GRID_STRIDE(i, n) out[i] = value;
}

// dst's element i from src's, both read through their strides over dst's sizes; the value goes
// through S's compute type to D.
template <typename S, typename D>
__global__ void copy_kernel(const S* src, D* dst, Strided src_at, Strided dst_at, std::int64_t n) {
  ACCEL_GRID_STRIDE(i, n) dst[offset_of(i, dst_at)] = convert_to<D>(load(src[offset_of(i, src_at)]));
}

// dst's row r = convert(src's row index[r]), `width` items a row. Rows of no width still have
// their indices checked: one item per row then, no copy.
template <typename S, typename D, typename Convert>
__global__ void gather_rows_kernel(const S* src, const std::int64_t* index, D* dst, std::int64_t rows,
                                   std::int64_t width, std::int64_t n, KernelErrorRecord* error, Convert convert) {
  const std::int64_t per_row = width > 0 ? width : 1;
  ACCEL_GRID_STRIDE(i, rows * per_row) {
    const std::int64_t r = i / per_row;
    const std::int64_t from = index[r];
    if (from < 0 || from >= n) {
      if (i % per_row == 0 && atomicCAS(&error->code, 0, kKernelErrorRowIndex) == 0) {
        error->row = r;
        error->value = from;
        error->limit = n;
      }
      continue;
    }
    if (width > 0) dst[i] = convert(src[from * width + i % width]);
  }
}

struct SameBits {  // rows copied as they are, in 4-byte words where they allow it (784 pixels: 196)
  template <typename Word>
  __device__ Word operator()(Word word) const {
    return word;
  }
};
struct PixelsToUnit {  // uint8 images to float32 in [0, 1]: the host loader's formula
  __device__ float operator()(std::uint8_t pixel) const { return pixel_to_unit(pixel); }
};

template <typename T>
__global__ void dropout_kernel(T* out, std::int64_t n, float keep, T scale, T zero, std::uint64_t seed,
                               const std::uint64_t* offset) {
  const std::uint64_t base = *offset;
  const std::int64_t blocks = (n + 3) / 4;
  ACCEL_GRID_STRIDE(b, blocks) {
    const auto draw = philox4x32(seed, base + static_cast<std::uint64_t>(b));
    for (int lane = 0; lane < 4 && b * 4 + lane < n; ++lane) {
      out[b * 4 + lane] = philox_uniform(draw[lane]) < keep ? scale : zero;
    }
  }
}

__global__ void advance_offset_kernel(std::uint64_t* offset, std::uint64_t blocks) { *offset += blocks; }

template <BinaryOp Op, typename C>
__device__ __forceinline__ C apply(C x, C y) {
  if constexpr (Op == BinaryOp::Add) return x + y;
  if constexpr (Op == BinaryOp::Sub) return x - y;
  if constexpr (Op == BinaryOp::Mul) return x * y;
  return x / y;
}

template <BinaryOp Op, typename T>
__global__ void binary_contiguous_kernel(const T* a, const T* b, T* out, std::int64_t n) {
  ACCEL_GRID_STRIDE(i, n) out[i] = store<T>(apply<Op>(load(a[i]), load(b[i])));
}

template <BinaryOp Op, typename T>
__global__ void binary_strided_kernel(const T* a, const T* b, T* out, Strided a_at, Strided b_at, std::int64_t n) {
  ACCEL_GRID_STRIDE(i, n) out[i] = store<T>(apply<Op>(load(a[offset_of(i, a_at)]), load(b[offset_of(i, b_at)])));
}

template <BinaryOp Op, typename T>
__global__ void binary_scalar_kernel(const T* a, compute_t<T> y, T* out, std::int64_t n) {
  ACCEL_GRID_STRIDE(i, n) out[i] = store<T>(apply<Op>(load(a[i]), y));
}

template <UnaryOp Op, typename C>
__device__ __forceinline__ C apply_unary(C x) {
  if constexpr (Op == UnaryOp::Relu) return x > C(0) || x != x ? x : C(0);  // NaN stays NaN
  if constexpr (Op == UnaryOp::Neg) return static_cast<C>(-x);
  if constexpr (Op == UnaryOp::Square) return static_cast<C>(x * x);
  if constexpr (Op == UnaryOp::Exp) return exp(x);
  return log(x);
}

template <UnaryOp Op, typename T>
__global__ void unary_kernel(const T* in, T* out, std::int64_t n) {
  ACCEL_GRID_STRIDE(i, n) out[i] = store<T>(apply_unary<Op>(load(in[i])));
}

template <typename T>
__global__ void relu_backward_kernel(const T* __restrict__ grad, const T* __restrict__ out, T* __restrict__ dst,
                                     std::int64_t n) {
  ACCEL_GRID_STRIDE(i, n) dst[i] = load(out[i]) > 0 ? grad[i] : store<T>(0);
}

template <typename T>
__global__ void eq_kernel(const T* a, const T* b, bool* out, std::int64_t n) {
  ACCEL_GRID_STRIDE(i, n) out[i] = load(a[i]) == load(b[i]);
}

template <typename T>
__global__ void bias_relu_kernel(T* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, const T* bias,
                                 std::int64_t bias_stride, bool relu, bool from_zero) {
  ACCEL_GRID_STRIDE(i, rows * cols) {
    T& x = c[(i / cols) * ldc + i % cols];
    compute_t<T> v = from_zero ? compute_t<T>(0) : load(x);
    if (bias) v += load(bias[(i % cols) * bias_stride]);
    if (relu) v = v > 0 || v != v ? v : compute_t<T>(0);
    x = store<T>(v);
  }
}

// A byte of the mask per thread (relu_mask.h), so no two threads write one byte.
template <typename T>
__global__ void relu_mask_write_kernel(const T* c, std::int64_t n, std::int64_t row_bytes, std::int64_t bytes,
                                       std::uint8_t* mask) {
  ACCEL_GRID_STRIDE(i, bytes) {
    const T* row = c + (i / row_bytes) * n;
    mask[i] = relu_mask_byte(i % row_bytes, n, [row](std::int64_t col) { return load(row[col]) > 0; });
  }
}

template <typename T>
__global__ void relu_mask_apply_kernel(T* c, std::int64_t n, std::int64_t row_bytes, std::int64_t count,
                                       const std::uint8_t* mask) {
  ACCEL_GRID_STRIDE(i, count) {
    if (!relu_mask_bit(mask, row_bytes, i / n, i % n)) c[i] = store<T>(compute_t<T>(0));
  }
}

bool integral(DType dtype) { return dtype == DType::Int64 || dtype == DType::Int32 || dtype == DType::UInt8; }

template <BinaryOp Op, typename T>
void run_binary(const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, cudaStream_t stream) {
  const std::int64_t n = out.numel();
  const auto blocks = static_cast<unsigned>(blocks_for(n));
  if (a.is_contiguous() && b.is_contiguous() && a.numel() == n && b.numel() == n) {
    binary_contiguous_kernel<Op, T>
        <<<blocks, kThreads, 0, stream>>>(a.ptr<const T>(), b.ptr<const T>(), out.ptr<T>(), n);
  } else {
    binary_strided_kernel<Op, T><<<blocks, kThreads, 0, stream>>>(a.ptr<const T>(), b.ptr<const T>(), out.ptr<T>(),
                                                                  strided_over(out, a), strided_over(out, b), n);
  }
  check_launch("binary");
}

template <BinaryOp Op, typename T>
void run_binary_scalar(const TensorDesc& a, double scalar, const TensorDesc& out, cudaStream_t stream) {
  const std::int64_t n = out.numel();
  binary_scalar_kernel<Op, T><<<static_cast<unsigned>(blocks_for(n)), kThreads, 0, stream>>>(
      a.ptr<const T>(), static_cast<compute_t<T>>(scalar), out.ptr<T>(), n);
  check_launch("binary_scalar");
}

template <UnaryOp Op, typename T>
void run_unary(const TensorDesc& in, const TensorDesc& out, cudaStream_t stream) {
  const std::int64_t n = out.numel();
  unary_kernel<Op, T>
      <<<static_cast<unsigned>(blocks_for(n)), kThreads, 0, stream>>>(in.ptr<const T>(), out.ptr<T>(), n);
  check_launch("unary");
}

}  // namespace

void launch_fill(const TensorDesc& dst, double value, cudaStream_t stream) {
  const std::int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_all(dst.dtype, "fill", [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T>
        <<<static_cast<unsigned>(blocks_for(n)), kThreads, 0, stream>>>(dst.ptr<T>(), convert_to<T>(value), n);
  });
  check_launch("fill");
}

void launch_copy(const TensorDesc& src, const TensorDesc& dst, cudaStream_t stream) {
  const std::int64_t n = dst.numel();
  if (n == 0) return;
  if (src.dtype == dst.dtype && src.is_contiguous() && dst.is_contiguous()) {
    const cudaError_t status = cudaMemcpyAsync(
        dst.data, src.data, static_cast<std::size_t>(n) * element_size(dst.dtype), cudaMemcpyDeviceToDevice, stream);
    if (status != cudaSuccess) throw DeviceError(std::string("copy on the GPU failed: ") + cudaGetErrorString(status));
    return;
  }
  const Strided src_at = strided_over(dst, src), dst_at = strided(dst);
  dispatch_all(src.dtype, "copy", [&](auto source_tag) {
    using S = decltype(source_tag);
    dispatch_all(dst.dtype, "copy", [&](auto dest_tag) {
      using D = decltype(dest_tag);
      copy_kernel<S, D><<<static_cast<unsigned>(blocks_for(n)), kThreads, 0, stream>>>(src.ptr<const S>(), dst.ptr<D>(),
                                                                                       src_at, dst_at, n);
    });
  });
  check_launch("copy");
}

void launch_gather_rows(const TensorDesc& src, const TensorDesc& index, const TensorDesc& dst, KernelErrorRecord* error,
                        cudaStream_t stream) {
  const std::int64_t rows = index.size(0), n = src.size(0);
  if (rows == 0) return;
  if (src.dtype == DType::UInt8 && dst.dtype == DType::Float32) {
    const std::int64_t width = dst.numel() / rows;
    gather_rows_kernel<<<static_cast<unsigned>(blocks_for(rows * std::max<std::int64_t>(width, 1))), kThreads, 0,
                         stream>>>(src.ptr<const std::uint8_t>(), index.ptr<const std::int64_t>(), dst.ptr<float>(),
                                   rows, width, n, error, PixelsToUnit{});
    check_launch("gather_rows");
    return;
  }
  const std::int64_t row_bytes = dst.numel() / rows * static_cast<std::int64_t>(element_size(dst.dtype));
  const auto run = [&](auto word) {
    using Word = decltype(word);
    const std::int64_t words = row_bytes / static_cast<std::int64_t>(sizeof(Word));
    gather_rows_kernel<<<static_cast<unsigned>(blocks_for(rows * std::max<std::int64_t>(words, 1))), kThreads, 0,
                         stream>>>(static_cast<const Word*>(src.data), index.ptr<const std::int64_t>(),
                                   static_cast<Word*>(dst.data), rows, words, n, error, SameBits{});
  };
  const auto aligned = [&](std::int64_t bytes) {
    return row_bytes % bytes == 0 && reinterpret_cast<std::uintptr_t>(src.data) % bytes == 0 &&
           reinterpret_cast<std::uintptr_t>(dst.data) % bytes == 0;
  };
  if (aligned(4)) {
    run(std::uint32_t{});
  } else if (aligned(2)) {
    run(std::uint16_t{});
  } else {
    run(std::uint8_t{});
  }
  check_launch("gather_rows");
}

void launch_dropout_mask(const TensorDesc& dst, double p, std::uint64_t seed, std::uint64_t* offset,
                         cudaStream_t stream) {
  const std::int64_t n = dst.numel();
  const std::int64_t blocks = (n + 3) / 4;
  const auto keep = static_cast<float>(1.0 - p);
  const double exact = 1.0 / (1.0 - p);
  dispatch_floating(dst.dtype, "dropout", [&](auto tag) {
    using T = decltype(tag);
    // The scale in the mask's dtype, rounded once (from double for float64, float otherwise).
    const T scale = std::is_same_v<T, double> ? convert_to<T>(exact) : convert_to<T>(static_cast<float>(exact));
    if (n > 0) {
      dropout_kernel<T><<<static_cast<unsigned>(blocks_for(blocks)), kThreads, 0, stream>>>(
          dst.ptr<T>(), n, keep, scale, convert_to<T>(0.0), seed, offset);
    }
  });
  advance_offset_kernel<<<1, 1, 0, stream>>>(offset, static_cast<std::uint64_t>(blocks));
  check_launch("dropout_mask");
}

void launch_binary(BinaryOp op, const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, cudaStream_t stream) {
  if (out.numel() == 0) return;
  const auto run = [&](auto tag) {
    using T = decltype(tag);
    switch (op) {
      case BinaryOp::Add:
        return run_binary<BinaryOp::Add, T>(a, b, out, stream);
      case BinaryOp::Sub:
        return run_binary<BinaryOp::Sub, T>(a, b, out, stream);
      case BinaryOp::Mul:
        return run_binary<BinaryOp::Mul, T>(a, b, out, stream);
      case BinaryOp::Div:
        if constexpr (!std::is_integral_v<T>) return run_binary<BinaryOp::Div, T>(a, b, out, stream);
        break;
    }
  };
  if (op == BinaryOp::Div || !integral(out.dtype)) {
    dispatch_floating(out.dtype, "binary", run);
  } else {
    dispatch_arithmetic(out.dtype, "binary", run);
  }
}

void launch_binary_scalar(BinaryOp op, const TensorDesc& a, double scalar, const TensorDesc& out, cudaStream_t stream) {
  if (out.numel() == 0) return;
  dispatch_floating(out.dtype, "binary_scalar", [&](auto tag) {
    using T = decltype(tag);
    switch (op) {
      case BinaryOp::Add:
        return run_binary_scalar<BinaryOp::Add, T>(a, scalar, out, stream);
      case BinaryOp::Sub:
        return run_binary_scalar<BinaryOp::Sub, T>(a, scalar, out, stream);
      case BinaryOp::Mul:
        return run_binary_scalar<BinaryOp::Mul, T>(a, scalar, out, stream);
      case BinaryOp::Div:
        return run_binary_scalar<BinaryOp::Div, T>(a, scalar, out, stream);
    }
  });
}

void launch_unary(UnaryOp op, const TensorDesc& in, const TensorDesc& out, cudaStream_t stream) {
  if (out.numel() == 0) return;
  dispatch_arithmetic(out.dtype, "unary", [&](auto tag) {
    using T = decltype(tag);
    switch (op) {
      case UnaryOp::Relu:
        return run_unary<UnaryOp::Relu, T>(in, out, stream);
      case UnaryOp::Neg:
        return run_unary<UnaryOp::Neg, T>(in, out, stream);
      case UnaryOp::Square:
        return run_unary<UnaryOp::Square, T>(in, out, stream);
      case UnaryOp::Exp:
      case UnaryOp::Log:
        if constexpr (std::is_integral_v<T>) {
          throw DTypeError("unary: exp and log take floating types, got " + std::string(dtype_name(out.dtype)));
        } else {
          return op == UnaryOp::Exp ? run_unary<UnaryOp::Exp, T>(in, out, stream)
                                    : run_unary<UnaryOp::Log, T>(in, out, stream);
        }
    }
  });
}

void launch_relu_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst, cudaStream_t stream) {
  const std::int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_floating(dst.dtype, "relu_backward", [&](auto tag) {
    using T = decltype(tag);
    relu_backward_kernel<T><<<static_cast<unsigned>(blocks_for(n)), kThreads, 0, stream>>>(
        grad.ptr<const T>(), out.ptr<const T>(), dst.ptr<T>(), n);
  });
  check_launch("relu_backward");
}

void launch_eq(const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, cudaStream_t stream) {
  const std::int64_t n = out.numel();
  if (n == 0) return;
  dispatch_all(a.dtype, "eq", [&](auto tag) {
    using T = decltype(tag);
    eq_kernel<T><<<static_cast<unsigned>(blocks_for(n)), kThreads, 0, stream>>>(a.ptr<const T>(), b.ptr<const T>(),
                                                                                out.ptr<bool>(), n);
  });
  check_launch("eq");
}

void launch_bias_relu(const TensorDesc& c, const TensorDesc* bias, bool relu, bool from_zero, cudaStream_t stream) {
  const std::int64_t rows = c.size(0), cols = c.size(1);
  if (rows * cols == 0 || (!bias && !relu && !from_zero)) return;
  dispatch_floating(c.dtype, "gemm epilogue", [&](auto tag) {
    using T = decltype(tag);
    bias_relu_kernel<T><<<static_cast<unsigned>(blocks_for(rows * cols)), kThreads, 0, stream>>>(
        c.ptr<T>(), c.stride(0), rows, cols, bias ? bias->ptr<const T>() : nullptr, bias ? bias->stride(0) : 0, relu,
        from_zero);
  });
  check_launch("gemm epilogue");
}

void launch_relu_mask(const TensorDesc& c, const TensorDesc& mask, bool write, cudaStream_t stream) {
  const std::int64_t rows = c.size(0), n = c.size(1), row_bytes = relu_mask_row_bytes(n);
  const std::int64_t count = write ? rows * row_bytes : rows * n;
  if (count == 0) return;
  dispatch_floating(c.dtype, "gemm relu mask", [&](auto tag) {
    using T = decltype(tag);
    const auto blocks = static_cast<unsigned>(blocks_for(count));
    if (write) {
      relu_mask_write_kernel<T>
          <<<blocks, kThreads, 0, stream>>>(c.ptr<const T>(), n, row_bytes, count, mask.ptr<std::uint8_t>());
    } else {
      relu_mask_apply_kernel<T>
          <<<blocks, kThreads, 0, stream>>>(c.ptr<T>(), n, row_bytes, count, mask.ptr<const std::uint8_t>());
    }
  });
  check_launch("gemm relu mask");
}

}  // namespace accel::cuda_backend
