// Elementwise kernels: broadcasting binary ops, unary ops, ReLU's gradient, eq.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "accel/backends/cpu/cpu_backend.h"
#include "accel/core/error.h"

namespace accel::cpu {
namespace {

template <BinaryOp Op>
inline float apply(float x, float y) {
  if constexpr (Op == BinaryOp::Add) return x + y;
  if constexpr (Op == BinaryOp::Sub) return x - y;
  if constexpr (Op == BinaryOp::Mul) return x * y;
  return x / y;
}

// Runs the innermost dimension as a loop the compiler vectorises for the common stride
// patterns (both contiguous, one broadcast), and the outer dimensions as an odometer.
template <BinaryOp Op>
void binary_kernel(const float* a, const std::vector<std::int64_t>& as, const float* b,
                   const std::vector<std::int64_t>& bs, float* out, const Shape& shape) {
  const std::int64_t n = shape.numel();
  if (n == 0) return;
  const std::size_t ndim = shape.ndim();
  const std::int64_t inner = ndim ? shape[ndim - 1] : 1;
  const std::int64_t sa = ndim ? as[ndim - 1] : 0;
  const std::int64_t sb = ndim ? bs[ndim - 1] : 0;
  const std::int64_t outer = n / inner;

  // Both operands contiguous over the whole shape: one flat loop.
  if (as == shape.contiguous_strides() && bs == as) {
    parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) out[i] = apply<Op>(a[i], b[i]);
    });
    return;
  }
  const auto row = [&](const float* pa, const float* pb, float* po) {
    if (sa == 1 && sb == 1) {
#pragma omp simd
      for (std::int64_t i = 0; i < inner; ++i) po[i] = apply<Op>(pa[i], pb[i]);
    } else if (sa == 1 && sb == 0) {
      const float y = *pb;
#pragma omp simd
      for (std::int64_t i = 0; i < inner; ++i) po[i] = apply<Op>(pa[i], y);
    } else if (sa == 0 && sb == 1) {
      const float x = *pa;
#pragma omp simd
      for (std::int64_t i = 0; i < inner; ++i) po[i] = apply<Op>(x, pb[i]);
    } else {
      for (std::int64_t i = 0; i < inner; ++i) po[i] = apply<Op>(pa[i * sa], pb[i * sb]);
    }
  };
  parallel_for(outer, std::max<std::int64_t>(1, kParallelThreshold / std::max<std::int64_t>(inner, 1)),
               [&](std::int64_t begin, std::int64_t end) {
                 for (std::int64_t o = begin; o < end; ++o) {
                   std::int64_t rest = o, off_a = 0, off_b = 0;
                   for (std::size_t d = ndim - 1; d-- > 0;) {
                     const std::int64_t idx = rest % shape[d];
                     rest /= shape[d];
                     off_a += idx * as[d];
                     off_b += idx * bs[d];
                   }
                   row(a + off_a, b + off_b, out + o * inner);
                 }
               });
}

template <BinaryOp Op>
void scalar_kernel(const float* a, float y, float* out, std::int64_t n) {
  parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) out[i] = apply<Op>(a[i], y);
  });
}

// out = f(in) elementwise.
template <typename F>
void map_kernel(const float* in, float* out, std::int64_t n, F f) {
  parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) out[i] = f(in[i]);
  });
}

}  // namespace

void CpuBackend::binary(BinaryOp op, const float* a, const std::vector<std::int64_t>& a_strides, const float* b,
                        const std::vector<std::int64_t>& b_strides, float* out, const Shape& shape) {
  switch (op) {
    case BinaryOp::Add:
      return binary_kernel<BinaryOp::Add>(a, a_strides, b, b_strides, out, shape);
    case BinaryOp::Sub:
      return binary_kernel<BinaryOp::Sub>(a, a_strides, b, b_strides, out, shape);
    case BinaryOp::Mul:
      return binary_kernel<BinaryOp::Mul>(a, a_strides, b, b_strides, out, shape);
    case BinaryOp::Div:
      return binary_kernel<BinaryOp::Div>(a, a_strides, b, b_strides, out, shape);
  }
}

void CpuBackend::binary_scalar(BinaryOp op, const float* a, float scalar, float* out, std::int64_t n) {
  switch (op) {
    case BinaryOp::Add:
      return scalar_kernel<BinaryOp::Add>(a, scalar, out, n);
    case BinaryOp::Sub:
      return scalar_kernel<BinaryOp::Sub>(a, scalar, out, n);
    case BinaryOp::Mul:
      return scalar_kernel<BinaryOp::Mul>(a, scalar, out, n);
    case BinaryOp::Div:
      return scalar_kernel<BinaryOp::Div>(a, scalar, out, n);
  }
}

void CpuBackend::unary(UnaryOp op, const float* in, float* out, std::int64_t n) {
  switch (op) {
    case UnaryOp::Relu:
      return map_kernel(in, out, n, [](float x) { return x > 0.0f ? x : 0.0f; });
    case UnaryOp::Neg:
      return map_kernel(in, out, n, [](float x) { return -x; });
    case UnaryOp::Exp:
      return map_kernel(in, out, n, [](float x) { return std::exp(x); });
    case UnaryOp::Log:
      return map_kernel(in, out, n, [](float x) { return std::log(x); });
    case UnaryOp::Square:
      return map_kernel(in, out, n, [](float x) { return x * x; });
  }
}

void CpuBackend::relu_backward(const float* grad_in, const float* out_in, float* dst_in, std::int64_t n) {
  parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
    // Distinct buffers: __restrict spares the vectorised loop its runtime overlap checks.
    const float* __restrict grad = grad_in;
    const float* __restrict out = out_in;
    float* __restrict dst = dst_in;
    for (std::int64_t i = begin; i < end; ++i) {
      const float g = grad[i];  // an unconditional load lets the select vectorise
      dst[i] = out[i] > 0.0f ? g : 0.0f;
    }
  });
}

void CpuBackend::eq(const void* a, const void* b, DType dtype, bool* out, std::int64_t n) {
  switch (dtype) {
    case DType::Float32: {
      const auto* x = static_cast<const float*>(a);
      const auto* y = static_cast<const float*>(b);
      for (std::int64_t i = 0; i < n; ++i) out[i] = x[i] == y[i];
      return;
    }
    case DType::Float64: {
      const auto* x = static_cast<const double*>(a);
      const auto* y = static_cast<const double*>(b);
      for (std::int64_t i = 0; i < n; ++i) out[i] = x[i] == y[i];
      return;
    }
    case DType::Int64: {
      const auto* x = static_cast<const std::int64_t*>(a);
      const auto* y = static_cast<const std::int64_t*>(b);
      for (std::int64_t i = 0; i < n; ++i) out[i] = x[i] == y[i];
      return;
    }
    default: {
      // Narrow types compare byte for byte: equal bit patterns are equal values for them.
      const std::size_t es = element_size(dtype);
      const auto* x = static_cast<const unsigned char*>(a);
      const auto* y = static_cast<const unsigned char*>(b);
      for (std::int64_t i = 0; i < n; ++i) out[i] = std::memcmp(x + i * es, y + i * es, es) == 0;
    }
  }
}

}  // namespace accel::cpu
