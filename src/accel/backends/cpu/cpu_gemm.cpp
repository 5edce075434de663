// GEMM through oneDNN's matmul primitive, with bias, accumulation and ReLU fused as post-ops.
//
// Why oneDNN: Debian's OpenBLAS 0.3.21 does not know this project's CPU (Sapphire Rapids),
// falls back to its Prescott (SSE3) kernels and reaches 33-57 GFLOP/s on the seed's
// 64x784x256 product; oneDNN's JIT AVX-512 kernels reach 230-330 GFLOP/s on the same call.
// Why the matmul primitive rather than dnnl_sgemm: measured on that product, sgemm with the
// bias pre-written and beta = 1 took 126 us, the primitive with bias + ReLU fused 92 us; the
// weight gradient 91 us vs 77 us (docs/design.md, "GEMM").
//
// Primitives are JIT-compiled per shape and layout, so they are cached here by that key; a
// training loop with fixed shapes compiles each of its few GEMMs once.
#include <omp.h>
#include <dnnl.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "accel/backends/cpu/cpu_backend.h"
#include "accel/backends/gemm_relu_mask.h"
#include "accel/backends/gemm_row_sums.h"
#include "accel/core/error.h"
#include "accel/core/parallel.h"
#include "accel/core/scalar_types.h"

namespace accel::cpu {
namespace {

using dims = dnnl::memory::dims;
using dt = dnnl::memory::data_type;

struct GemmKey {
  DType dtype;
  std::int64_t m, n, k;
  std::int64_t a_row, a_col, b_row, b_col, ldc;  // element strides of A [m, k], B [k, n], C
  bool bias, accumulate, relu;
  // oneDNN fixes a matmul's thread count when the primitive is made: a plan per count, so that
  // set_num_threads (the ThreadTuner) reaches the GEMMs too, not only accel's own loops.
  int threads;
  auto tie() const {
    return std::tie(dtype, m, n, k, a_row, a_col, b_row, b_col, ldc, bias, accumulate, relu, threads);
  }
  bool operator<(const GemmKey& other) const { return tie() < other.tie(); }
};

struct GemmPlan {
  dnnl::matmul primitive;
  dnnl::memory::desc a, b, bias, c;
};

class GemmCache {
 public:
  GemmCache() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

  // Runs the GEMM; false when oneDNN has no kernel for the key's dtype on this CPU (bf16/f16
  // without AVX512_BF16/AMX or AVX512_FP16), remembered so the question is asked once.
  bool run(const GemmKey& key, const void* a, const void* b, const void* bias, void* c) {
    std::lock_guard<std::mutex> lock(mutex_);  // one GEMM at a time: each already uses every core
    auto it = plans_.find(key);
    if (it == plans_.end()) it = plans_.emplace(key, plan(key)).first;
    if (!it->second) return false;
    const GemmPlan& p = *it->second;
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl::memory(p.a, engine_, const_cast<void*>(a))},
                                               {DNNL_ARG_WEIGHTS, dnnl::memory(p.b, engine_, const_cast<void*>(b))},
                                               {DNNL_ARG_DST, dnnl::memory(p.c, engine_, c)}};
    if (key.bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p.bias, engine_, const_cast<void*>(bias)));
    p.primitive.execute(stream_, args);
    stream_.wait();
    return true;
  }

 private:
  std::optional<GemmPlan> plan(const GemmKey& key) {
    GemmPlan p;
    const dt type = key.dtype == DType::BFloat16 ? dt::bf16 : key.dtype == DType::Float16 ? dt::f16 : dt::f32;
    p.a = dnnl::memory::desc(dims{key.m, key.k}, type, dims{key.a_row, key.a_col});
    p.b = dnnl::memory::desc(dims{key.k, key.n}, type, dims{key.b_row, key.b_col});
    p.c = dnnl::memory::desc(dims{key.m, key.n}, type, dims{key.ldc, 1});
    if (key.bias) p.bias = dnnl::memory::desc(dims{1, key.n}, type, dims{key.n, 1});
    dnnl::post_ops post;
    if (key.accumulate) post.append_sum(1.0f);
    if (key.relu) post.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(post);
    const auto desc = key.bias ? dnnl::matmul::desc(p.a, p.b, p.bias, p.c) : dnnl::matmul::desc(p.a, p.b, p.c);
    try {
      p.primitive = dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, engine_));
    } catch (const dnnl::error& e) {
      if (key.dtype == DType::Float32 || e.status != dnnl_unimplemented) throw;
      return std::nullopt;  // no 16-bit kernel on this CPU: the caller widens to float32
    }
    return p;
  }

  dnnl::engine engine_;
  dnnl::stream stream_;
  std::mutex mutex_;
  std::map<GemmKey, std::optional<GemmPlan>> plans_;
};

GemmCache& cache() {
  static GemmCache instance;
  return instance;
}

// float64 GEMM (oneDNN has none): rows in parallel, the k loop outside the n loop so the
// innermost loop streams through B's and C's rows. The reference for the op tests, not tuned.
void gemm_f64(const TensorDesc& a, const TensorDesc& b, const TensorDesc& c, const GemmEpilogue& e) {
  const std::int64_t m = c.size(0), n = c.size(1), k = a.size(1);
  const double* pa = a.ptr<const double>();
  const double* pb = b.ptr<const double>();
  double* pc = c.ptr<double>();
  const double* bias = e.bias ? e.bias->ptr<const double>() : nullptr;
  parallel_for(m, 16, [&](std::int64_t begin, std::int64_t end) {
    std::vector<double> row(static_cast<std::size_t>(n));
    for (std::int64_t i = begin; i < end; ++i) {
      std::fill(row.begin(), row.end(), 0.0);
      for (std::int64_t p = 0; p < k; ++p) {
        const double x = pa[i * a.stride(0) + p * a.stride(1)];
        for (std::int64_t j = 0; j < n; ++j)
          row[static_cast<std::size_t>(j)] += x * pb[p * b.stride(0) + j * b.stride(1)];
      }
      double* out = pc + i * c.stride(0);
      for (std::int64_t j = 0; j < n; ++j) {
        double v = row[static_cast<std::size_t>(j)] + (bias ? bias[j] : 0.0) + (e.beta != 0.0f ? out[j] : 0.0);
        out[j] = e.relu && v < 0.0 ? 0.0 : v;
      }
    }
  });
}

// A float32 copy of a 16-bit operand (exact: every bf16/f16 value is a float32). A dense
// operand keeps its memory order (row-major, or a transposed row-major matrix such as a
// weight read as W^T), so the conversion is one contiguous, vectorised pass; `convert` false
// only allocates (an output the GEMM overwrites).
// The buffer comes from the host allocator's cache: a training step asks for the same sizes
// every step, and fresh 800 KB buffers from malloc cost page faults each time.
struct HostBuffer {
  void* data;
  std::size_t bytes;
  explicit HostBuffer(std::size_t n) : data(memory::host_allocator().allocate(n)), bytes(n) {}
  ~HostBuffer() { memory::host_allocator().deallocate(data, bytes); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
};
struct Widened {
  std::unique_ptr<HostBuffer> values;
  TensorDesc desc;
};
Widened widen(CpuBackend& backend, const TensorDesc& in, bool convert = true) {
  const std::int64_t n = in.numel();
  Widened w{std::make_unique<HostBuffer>(static_cast<std::size_t>(n) * sizeof(float)), in};
  w.desc.dtype = DType::Float32;
  w.desc.data = w.values->data;
  const bool transposed = in.ndim == 2 && in.stride(0) == 1 && in.stride(1) == in.size(0) && in.size(0) > 1;
  if (transposed) {
    w.desc.strides = {1, in.size(0)};
  } else {
    std::int64_t stride = 1;
    for (int d = in.ndim - 1; d >= 0; --d) {
      w.desc.strides[static_cast<std::size_t>(d)] = stride;
      stride *= in.size(d);
    }
  }
  if (!convert) return w;
  if (transposed) {  // both dense in the same order: convert as one flat run
    TensorDesc flat_in = in, flat_out = w.desc;
    flat_in.ndim = flat_out.ndim = 1;
    flat_in.sizes[0] = flat_out.sizes[0] = n;
    flat_in.strides[0] = flat_out.strides[0] = 1;
    backend.copy(flat_in, flat_out, backend.default_stream());
  } else {
    backend.copy(in, w.desc, backend.default_stream());
  }
  return w;
}

// C = epilogue(beta C) for k = 0, where A B is all zeros (oneDNN's matmul divides by k).
void empty_product(const TensorDesc& c, const GemmEpilogue& e) {
  dispatch_floating(c.dtype, "gemm", [&]<typename T>() {
    const T* bias = e.bias ? e.bias->ptr<const T>() : nullptr;
    for (std::int64_t i = 0; i < c.size(0); ++i) {
      T* row = c.ptr<T>() + i * c.stride(0);
      for (std::int64_t j = 0; j < c.size(1); ++j) {
        compute_t<T> v = e.beta != 0.0f ? load(row[j]) : compute_t<T>(0);
        if (bias) v += load(bias[j * e.bias->stride(0)]);
        row[j] = store<T>(e.relu && v < 0 ? compute_t<T>(0) : v);
      }
    }
  });
}

// The ReLU mask of C (contiguous [m, n], after its ReLU): relu_mask.h's layout.
void write_relu_mask(const TensorDesc& c, const TensorDesc& mask) {
  const std::int64_t n = c.size(1), row_bytes = relu_mask_row_bytes(n);
  dispatch_floating(c.dtype, "gemm relu mask", [&]<typename T>() {
    const T* values = c.ptr<const T>();
    std::uint8_t* bits = mask.ptr<std::uint8_t>();
    parallel_for(c.size(0) * row_bytes, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const T* row = values + (i / row_bytes) * n;
        bits[i] = relu_mask_byte(i % row_bytes, n, [row](std::int64_t col) { return load(row[col]) > 0; });
      }
    });
  });
}

// C = C where the mask's bit is set, else 0: the gradient through the ReLU (relu_backward's
// select, so +0 where the bit is clear).
void apply_relu_mask(const TensorDesc& c, const TensorDesc& mask) {
  const std::int64_t n = c.size(1), row_bytes = relu_mask_row_bytes(n);
  dispatch_floating(c.dtype, "gemm relu gradient", [&]<typename T>() {
    T* values = c.ptr<T>();
    const std::uint8_t* bits = mask.ptr<const std::uint8_t>();
    parallel_for(c.numel(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        values[i] = relu_mask_bit(bits, row_bytes, i / n, i % n) ? values[i] : store<T>(0);
      }
    });
  });
}

}  // namespace

void CpuBackend::gemm(const TensorDesc& a, const TensorDesc& b, const TensorDesc& c, const GemmEpilogue& epilogue,
                      const Stream& stream) {
  check_relu_mask_epilogue(c, epilogue, "cpu");
  if (epilogue.relu_mask) {  // the GEMM, then the mask written, or applied and C's column sums
    GemmEpilogue plain = epilogue;
    plain.relu_mask = plain.bias_gradient = nullptr;
    CpuBackend::gemm(a, b, c, plain, stream);
    if (epilogue.relu) {
      write_relu_mask(c, *epilogue.relu_mask);
      return;
    }
    apply_relu_mask(c, *epilogue.relu_mask);
    if (epilogue.bias_gradient) {
      const RowSumsViews sums = column_sums_views(c, *epilogue.bias_gradient);
      CpuBackend::sum(sums.in, sums.out, stream);
    }
    return;
  }
  if (epilogue.a_row_sums) {  // the GEMM, then A's row sums by the sum kernel (qualified: a
                              // SimBackend has translated its pointers already)
    if (epilogue.bias || epilogue.relu) throw ValueError("cpu gemm: a_row_sums with a bias or ReLU epilogue");
    GemmEpilogue plain = epilogue;
    plain.a_row_sums = nullptr;
    CpuBackend::gemm(a, b, c, plain, stream);
    const RowSumsViews sums = row_sums_views(a, *epilogue.a_row_sums);
    CpuBackend::sum(sums.in, sums.out, stream);
    return;
  }
  const std::int64_t m = c.size(0), n = c.size(1), k = a.size(1);
  if (m == 0 || n == 0) return;
  if (epilogue.beta != 0.0f && epilogue.beta != 1.0f) {
    throw ValueError("cpu gemm: beta must be 0 or 1, got " + std::to_string(epilogue.beta));
  }
  if (k == 0) return empty_product(c, epilogue);
  if (c.dtype == DType::Float64) return gemm_f64(a, b, c, epilogue);
  const GemmKey key{c.dtype,
                    m,
                    n,
                    k,
                    a.stride(0),
                    a.stride(1),
                    b.stride(0),
                    b.stride(1),
                    c.stride(0),
                    epilogue.bias != nullptr,
                    epilogue.beta == 1.0f,
                    epilogue.relu,
                    omp_get_max_threads()};
  try {
    if (cache().run(key, a.data, b.data, epilogue.bias ? epilogue.bias->data : nullptr, c.data)) return;
  } catch (const dnnl::error& e) {
    throw Error("oneDNN matmul failed (" + std::string(e.what()) + ") for m=" + std::to_string(m) +
                " n=" + std::to_string(n) + " k=" + std::to_string(k));
  }
  // A 16-bit GEMM on a CPU without 16-bit matmul kernels: widen the operands to float32 (exact),
  // run the float32 GEMM (float32 accumulation, as the 16-bit kernels do) and round C once.
  const Widened wa = widen(*this, a), wb = widen(*this, b);
  Widened wc = widen(*this, c, epilogue.beta != 0.0f);
  std::optional<Widened> wbias;
  if (epilogue.bias) wbias = widen(*this, *epilogue.bias);
  GemmEpilogue wide = epilogue;
  wide.bias = wbias ? &wbias->desc : nullptr;
  gemm(wa.desc, wb.desc, wc.desc, wide, stream);
  copy(wc.desc, c, stream);
}

std::string CpuBackend::gemm_library() { return gemm_library_description(); }

std::string gemm_library_description() {
  const dnnl_version_t* v = dnnl_version();
  std::string isa;
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41:
      isa = "sse4.1";
      break;
    case dnnl_cpu_isa_avx:
      isa = "avx";
      break;
    case dnnl_cpu_isa_avx2:
      isa = "avx2";
      break;
    case dnnl_cpu_isa_avx2_vnni:
      isa = "avx2_vnni";
      break;
    case dnnl_cpu_isa_avx512_core:
      isa = "avx512_core";
      break;
    case dnnl_cpu_isa_avx512_core_vnni:
      isa = "avx512_core_vnni";
      break;
    case dnnl_cpu_isa_avx512_core_bf16:
      isa = "avx512_core_bf16";
      break;
    case dnnl_cpu_isa_avx512_core_amx:
      isa = "avx512_core_amx";
      break;
    default:
      isa = "isa " + std::to_string(static_cast<int>(dnnl_get_effective_cpu_isa()));
  }
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) + " (" +
         isa + ")";
}

}  // namespace accel::cpu
