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
#include <mutex>
#include <string>
#include <tuple>

#include "accel/backends/cpu/cpu_backend.h"
#include "accel/core/error.h"

namespace accel::cpu {
namespace {

using dims = dnnl::memory::dims;
using dt = dnnl::memory::data_type;

struct GemmKey {
  std::int64_t m, n, k;
  std::int64_t a_row, a_col, b_row, b_col, ldc;  // element strides of A [m, k], B [k, n], C
  bool bias, accumulate, relu;
  // oneDNN fixes a matmul's thread count when the primitive is made: a plan per count, so that
  // set_num_threads (the ThreadTuner) reaches the GEMMs too, not only accel's own loops.
  int threads;
  auto tie() const { return std::tie(m, n, k, a_row, a_col, b_row, b_col, ldc, bias, accumulate, relu, threads); }
  bool operator<(const GemmKey& other) const { return tie() < other.tie(); }
};

struct GemmPlan {
  dnnl::matmul primitive;
  dnnl::memory::desc a, b, bias, c;
};

class GemmCache {
 public:
  GemmCache() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

  void run(const GemmKey& key, const float* a, const float* b, const float* bias, float* c) {
    std::lock_guard<std::mutex> lock(mutex_);  // one GEMM at a time: each already uses every core
    auto it = plans_.find(key);
    if (it == plans_.end()) it = plans_.emplace(key, plan(key)).first;
    const GemmPlan& p = it->second;
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl::memory(p.a, engine_, const_cast<float*>(a))},
                                               {DNNL_ARG_WEIGHTS, dnnl::memory(p.b, engine_, const_cast<float*>(b))},
                                               {DNNL_ARG_DST, dnnl::memory(p.c, engine_, c)}};
    if (key.bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p.bias, engine_, const_cast<float*>(bias)));
    p.primitive.execute(stream_, args);
    stream_.wait();
  }

 private:
  GemmPlan plan(const GemmKey& key) {
    GemmPlan p;
    p.a = dnnl::memory::desc(dims{key.m, key.k}, dt::f32, dims{key.a_row, key.a_col});
    p.b = dnnl::memory::desc(dims{key.k, key.n}, dt::f32, dims{key.b_row, key.b_col});
    p.c = dnnl::memory::desc(dims{key.m, key.n}, dt::f32, dims{key.ldc, 1});
    if (key.bias) p.bias = dnnl::memory::desc(dims{1, key.n}, dt::f32, dims{key.n, 1});
    dnnl::post_ops post;
    if (key.accumulate) post.append_sum(1.0f);
    if (key.relu) post.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(post);
    const auto desc = key.bias ? dnnl::matmul::desc(p.a, p.b, p.bias, p.c) : dnnl::matmul::desc(p.a, p.b, p.c);
    p.primitive = dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, engine_));
    return p;
  }

  dnnl::engine engine_;
  dnnl::stream stream_;
  std::mutex mutex_;
  std::map<GemmKey, GemmPlan> plans_;
};

GemmCache& cache() {
  static GemmCache instance;
  return instance;
}

}  // namespace

void CpuBackend::gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                      std::int64_t lda, const float* b, std::int64_t ldb, float* c, std::int64_t ldc, const float* bias,
                      float beta, bool relu) {
  if (m == 0 || n == 0) return;
  if (beta != 0.0f && beta != 1.0f) {
    throw ValueError("cpu gemm: beta must be 0 or 1, got " + std::to_string(beta));
  }
  const GemmKey key{m,
                    n,
                    k,
                    trans_a ? 1 : lda,
                    trans_a ? lda : 1,
                    trans_b ? 1 : ldb,
                    trans_b ? ldb : 1,
                    ldc,
                    bias != nullptr,
                    beta == 1.0f,
                    relu,
                    omp_get_max_threads()};
  try {
    cache().run(key, a, b, bias, c);
  } catch (const dnnl::error& e) {
    throw Error("oneDNN matmul failed (" + std::string(e.what()) + ") for m=" + std::to_string(m) +
                " n=" + std::to_string(n) + " k=" + std::to_string(k));
  }
}

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
