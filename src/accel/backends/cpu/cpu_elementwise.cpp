// Elementwise kernels for every dtype: broadcasting binary ops, scalar ops, unary ops, ReLU's
// gradient, eq. Each is a template over the storage type; 16-bit floats compute in float32.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "accel/backends/cpu/cpu_backend.h"
#include "accel/backends/cpu/strided.h"
#include "accel/core/error.h"
#include "accel/core/scalar_types.h"

namespace accel::cpu {
namespace {

template <BinaryOp Op, typename C>
inline C apply(C x, C y) {
  if constexpr (Op == BinaryOp::Add) return x + y;
  if constexpr (Op == BinaryOp::Sub) return x - y;
  if constexpr (Op == BinaryOp::Mul) return x * y;
  return x / y;
}

// The innermost dimension runs as a loop the compiler vectorises for the common stride
// patterns (both contiguous, one broadcast); the outer dimensions as an odometer.
template <BinaryOp Op, typename T>
void binary_kernel(const TensorDesc& ad, const TensorDesc& bd, const TensorDesc& od) {
  const T* a = ad.ptr<const T>();
  const T* b = bd.ptr<const T>();
  T* out = od.ptr<T>();
  const std::int64_t n = od.numel();
  if (n == 0) return;
  const auto f = [](T x, T y) { return store<T>(apply<Op>(load(x), load(y))); };
  if (ad.is_contiguous() && bd.is_contiguous() && ad.numel() == n && bd.numel() == n) {
    parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) out[i] = f(a[i], b[i]);
    });
    return;
  }
  const std::int64_t inner = od.ndim ? od.size(od.ndim - 1) : 1;
  const std::int64_t sa = inner_stride(ad), sb = inner_stride(bd);
  for_each_row<2>(od, {&ad, &bd}, [&](std::int64_t r, const std::array<std::int64_t, 2>& at) {
    const T* pa = a + at[0];
    const T* pb = b + at[1];
    T* po = out + r * inner;
    if (sa == 1 && sb == 1) {
#pragma omp simd
      for (std::int64_t i = 0; i < inner; ++i) po[i] = f(pa[i], pb[i]);
    } else if (sa == 1 && sb == 0) {
      const T y = *pb;
#pragma omp simd
      for (std::int64_t i = 0; i < inner; ++i) po[i] = f(pa[i], y);
    } else if (sa == 0 && sb == 1) {
      const T x = *pa;
#pragma omp simd
      for (std::int64_t i = 0; i < inner; ++i) po[i] = f(x, pb[i]);
    } else {
      for (std::int64_t i = 0; i < inner; ++i) po[i] = f(pa[i * sa], pb[i * sb]);
    }
  });
}

template <typename T, typename F>
void map_kernel(const TensorDesc& in, const TensorDesc& out, F f) {
  const T* x = in.ptr<const T>();
  T* y = out.ptr<T>();
  parallel_for(out.numel(), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) y[i] = store<T>(f(load(x[i])));
  });
}

bool integral(DType dtype) { return dtype == DType::Int64 || dtype == DType::Int32 || dtype == DType::UInt8; }

}  // namespace

void CpuBackend::binary(BinaryOp op, const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, const Stream&) {
  const auto run = [&]<typename T>() {
    switch (op) {
      case BinaryOp::Add:
        return binary_kernel<BinaryOp::Add, T>(a, b, out);
      case BinaryOp::Sub:
        return binary_kernel<BinaryOp::Sub, T>(a, b, out);
      case BinaryOp::Mul:
        return binary_kernel<BinaryOp::Mul, T>(a, b, out);
      case BinaryOp::Div:
        return binary_kernel<BinaryOp::Div, T>(a, b, out);
    }
  };
  if (op == BinaryOp::Div || !integral(out.dtype)) {
    dispatch_floating(out.dtype, "binary", run);
  } else {
    dispatch_arithmetic(out.dtype, "binary", run);
  }
}

void CpuBackend::binary_scalar(BinaryOp op, const TensorDesc& a, double scalar, const TensorDesc& out, const Stream&) {
  dispatch_floating(out.dtype, "binary_scalar", [&]<typename T>() {
    const auto y = static_cast<compute_t<T>>(scalar);
    switch (op) {
      case BinaryOp::Add:
        return map_kernel<T>(a, out, [y](auto x) { return x + y; });
      case BinaryOp::Sub:
        return map_kernel<T>(a, out, [y](auto x) { return x - y; });
      case BinaryOp::Mul:
        return map_kernel<T>(a, out, [y](auto x) { return x * y; });
      case BinaryOp::Div:
        return map_kernel<T>(a, out, [y](auto x) { return x / y; });
    }
  });
}

void CpuBackend::unary(UnaryOp op, const TensorDesc& in, const TensorDesc& out, const Stream&) {
  const auto run = [&]<typename T>() {
    using C = compute_t<T>;
    switch (op) {
      case UnaryOp::Relu:
        return map_kernel<T>(in, out, [](C x) { return x > C(0) || x != x ? x : C(0); });  // NaN stays NaN
      case UnaryOp::Neg:
        return map_kernel<T>(in, out, [](C x) { return static_cast<C>(-x); });
      case UnaryOp::Square:
        return map_kernel<T>(in, out, [](C x) { return static_cast<C>(x * x); });
      case UnaryOp::Exp:
        if constexpr (std::is_floating_point_v<C>) return map_kernel<T>(in, out, [](C x) { return std::exp(x); });
        break;
      case UnaryOp::Log:
        if constexpr (std::is_floating_point_v<C>) return map_kernel<T>(in, out, [](C x) { return std::log(x); });
        break;
    }
    throw DTypeError("unary: exp and log take floating types, got " + std::string(dtype_name(out.dtype)));
  };
  dispatch_arithmetic(out.dtype, "unary", run);
}

void CpuBackend::relu_backward(const TensorDesc& grad_d, const TensorDesc& out_d, const TensorDesc& dst_d,
                               const Stream&) {
  dispatch_floating(dst_d.dtype, "relu_backward", [&]<typename T>() {
    parallel_for(dst_d.numel(), [&](std::int64_t begin, std::int64_t end) {
      // Distinct buffers: __restrict spares the vectorised loop its runtime overlap checks.
      const T* __restrict grad = grad_d.ptr<const T>();
      const T* __restrict out = out_d.ptr<const T>();
      T* __restrict dst = dst_d.ptr<T>();
      for (std::int64_t i = begin; i < end; ++i) {
        const T g = grad[i];  // an unconditional load lets the select vectorise
        dst[i] = load(out[i]) > 0 ? g : store<T>(0);
      }
    });
  });
}

void CpuBackend::eq(const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, const Stream&) {
  bool* result = out.ptr<bool>();
  const std::int64_t n = out.numel();
  dispatch_all(a.dtype, "eq", [&]<typename T>() {
    const T* x = a.ptr<const T>();
    const T* y = b.ptr<const T>();
    for (std::int64_t i = 0; i < n; ++i) result[i] = load(x[i]) == load(y[i]);
  });
}

}  // namespace accel::cpu
