// cuBLASLt GEMMs for row-major tensors. cuBLASLt is column-major: a row-major C [m, n] is the
// column-major C^T [n, m], and C^T = B^T A^T, so our B is cuBLASLt's first operand and our A its
// second; a transposed view (unit stride in its first dim) becomes that operand's transpose.
// The bias [n] is then per row of C^T, which is cuBLASLt's BIAS epilogue, the row sums of our A
// (a bias gradient) its BGRADB epilogue, a ReLU mask written its RELU_AUX and one read its DRELU
// (with C's column sums, a bias gradient again: DRELU_BGRAD); relu_mask.h has the mask's
// layout. Plans (descriptors and the heuristic's algorithm) are cached per shape, strides,
// dtype, epilogue and alignment.
#include "accel/backends/cuda/cuda_gemm.h"

#include <cublasLt.h>
#include <dlfcn.h>
#include <glob.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "accel/backends/cuda/cuda_check.h"
#include "accel/backends/cuda/cuda_kernels.h"
#include "accel/backends/gemm_relu_mask.h"
#include "accel/backends/gemm_row_sums.h"
#include "accel/core/error.h"

namespace accel::cuda_backend {

struct CublasLt {
  std::string path;
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) preference_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) preference_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) preference_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
};

struct GemmPlan {
  const CublasLt* lt = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // cuBLASLt's operands (our B, A, C)
  cublasLtMatmulAlgo_t algo{};
  bool fused_epilogue = true;  // false: the epilogue runs as our kernels after the GEMM
  ~GemmPlan() {
    if (a) lt->layout_destroy(a);
    if (b) lt->layout_destroy(b);
    if (c) lt->layout_destroy(c);
    if (desc) lt->desc_destroy(desc);
  }
};

namespace {

// The parts of an epilogue that cuBLASLt fuses (a plan's key): the bits of one call's request.
enum Fuse : int {
  kBias = 1,
  kRelu = 2,
  kRowSumsOfA = 4,     // BGRADB
  kWriteReluMask = 8,  // RELU_AUX(_BIAS)
  kReadReluMask = 16,  // DRELU
  kColumnSums = 32,    // DRELU_BGRAD's bias gradient
};

struct EpilogueName {
  int fuse;
  cublasLtEpilogue_t value;
  const char* name;
};
constexpr EpilogueName kEpilogues[] = {
    {0, CUBLASLT_EPILOGUE_DEFAULT, "DEFAULT"},
    {kBias, CUBLASLT_EPILOGUE_BIAS, "BIAS"},
    {kRelu, CUBLASLT_EPILOGUE_RELU, "RELU"},
    {kBias | kRelu, CUBLASLT_EPILOGUE_RELU_BIAS, "RELU_BIAS"},
    {kRowSumsOfA, CUBLASLT_EPILOGUE_BGRADB, "BGRADB"},
    {kRelu | kWriteReluMask, CUBLASLT_EPILOGUE_RELU_AUX, "RELU_AUX"},
    {kBias | kRelu | kWriteReluMask, CUBLASLT_EPILOGUE_RELU_AUX_BIAS, "RELU_AUX_BIAS"},
    {kReadReluMask, CUBLASLT_EPILOGUE_DRELU, "DRELU"},
    {kReadReluMask | kColumnSums, CUBLASLT_EPILOGUE_DRELU_BGRAD, "DRELU_BGRAD"},
};

const EpilogueName& cublaslt_epilogue(int fuse) {
  for (const EpilogueName& e : kEpilogues) {
    if (e.fuse == fuse) return e;
  }
  throw ValueError("cuda gemm: no cuBLASLt epilogue for the combination " + std::to_string(fuse));
}

std::vector<std::string> cublaslt_candidates() {
  std::vector<std::string> out;
  if (const char* path = std::getenv("ACCEL_CUBLASLT_LIBRARY"); path && *path) return {path};
  out = {"libcublasLt.so.13", "/usr/local/cuda/lib64/libcublasLt.so.13", "libcublasLt.so.12",
         "/usr/local/cuda/lib64/libcublasLt.so.12"};
  // PyTorch's and JAX's wheels bring cuBLASLt as nvidia-cublas(-cuNN).
  for (const char* pattern : {"/usr/local/lib/python3*/*-packages/nvidia/cu*/lib/libcublasLt.so.1[23]",
                              "/usr/lib/python3*/*-packages/nvidia/cu*/lib/libcublasLt.so.1[23]",
                              "/opt/conda/lib/python3*/site-packages/nvidia/cu*/lib/libcublasLt.so.1[23]"}) {
    glob_t found{};
    if (glob(pattern, 0, nullptr, &found) == 0) {
      for (std::size_t i = 0; i < found.gl_pathc; ++i) out.emplace_back(found.gl_pathv[i]);
    }
    globfree(&found);
  }
  return out;
}

const CublasLt& load_cublaslt() {
  static const CublasLt lt = [] {
    CublasLt l;
    std::string tried;
    void* library = nullptr;
    for (const std::string& candidate : cublaslt_candidates()) {
      library = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (library) {
        l.path = candidate;
        break;
      }
      tried += (tried.empty() ? "" : ", ") + candidate;
    }
    if (!library) {
      throw DeviceError("cuBLASLt not found (tried " + tried +
                        "): install the CUDA toolkit's libcublas, or set ACCEL_CUBLASLT_LIBRARY to libcublasLt.so");
    }
    const auto bind = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(library, name));
      if (!fn) throw DeviceError(l.path + " has no " + name + ": a cuBLASLt of CUDA 12 or newer is needed");
    };
    bind(l.create, "cublasLtCreate");
    bind(l.destroy, "cublasLtDestroy");
    bind(l.desc_create, "cublasLtMatmulDescCreate");
    bind(l.desc_destroy, "cublasLtMatmulDescDestroy");
    bind(l.desc_set, "cublasLtMatmulDescSetAttribute");
    bind(l.layout_create, "cublasLtMatrixLayoutCreate");
    bind(l.layout_destroy, "cublasLtMatrixLayoutDestroy");
    bind(l.preference_create, "cublasLtMatmulPreferenceCreate");
    bind(l.preference_destroy, "cublasLtMatmulPreferenceDestroy");
    bind(l.preference_set, "cublasLtMatmulPreferenceSetAttribute");
    bind(l.heuristic, "cublasLtMatmulAlgoGetHeuristic");
    bind(l.matmul, "cublasLtMatmul");
    return l;
  }();
  return lt;
}

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw DeviceError(std::string("cuBLASLt: ") + what + " failed with status " + std::to_string(status));
  }
}

cudaDataType_t data_type(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return CUDA_R_32F;
    case DType::Float64:
      return CUDA_R_64F;
    case DType::BFloat16:
      return CUDA_R_16BF;
    case DType::Float16:
      return CUDA_R_16F;
    default:
      throw DTypeError("gemm: no CUDA GEMM for " + std::string(dtype_name(dtype)) +
                       " (float32, float64, bfloat16, float16)");
  }
}

int alignment_of(const void* p) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  int alignment = 1;
  while (alignment < 256 && address % static_cast<std::uintptr_t>(alignment * 2) == 0) alignment *= 2;
  return alignment;
}

// One operand as cuBLASLt sees it: stored column-major as rows x cols with leading dimension
// ld, and used transposed or not.
struct Operand {
  bool transpose;
  std::int64_t rows, cols, ld;
};

// Our row-major [r, c] operand `t`, as the column-major [c, r] matrix (op N) or, for a view with
// a unit stride in its first dim, as the column-major [r, c] storage transposed (op T).
Operand column_major(const TensorDesc& t) {
  const std::int64_t r = t.size(0), c = t.size(1);
  if (t.stride(1) == 1 || c == 1) return {false, c, r, std::max<std::int64_t>({t.stride(0), c, 1})};
  return {true, r, c, std::max<std::int64_t>({t.stride(1), r, 1})};
}

}  // namespace

std::string cublaslt_description() {
  try {
    return "cuBLASLt (" + load_cublaslt().path + ")";
  } catch (const DeviceError& error) {
    return error.what();
  }
}

GemmEngine::GemmEngine(int device) : device_(device), lt_(load_cublaslt()) {
  DeviceGuard guard(device_);
  cublasLtHandle_t handle = nullptr;
  check(lt_.create(&handle), "cublasLtCreate");
  handle_ = handle;
  // cuBLASLt's recommendation for Hopper is 32 MiB; smaller GPUs use less of it.
  workspace_bytes_ = std::size_t{32} << 20;
  ACCEL_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

GemmEngine::~GemmEngine() {
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (handle_) lt_.destroy(static_cast<cublasLtHandle_t>(handle_));
}

GemmPlan& GemmEngine::plan_for(const Key& key) {
  auto& slot = plans_[key];
  if (slot) return *slot;
  const auto [dtype_int, transa, transb, m, n, k, lda, ldb, ldc, epilogue, accumulate, align_a, align_b, align_c,
              align_vector, align_mask] = key;
  const auto dtype = static_cast<DType>(dtype_int);
  auto plan = std::make_unique<GemmPlan>();
  plan->lt = &lt_;
  const cudaDataType_t type = data_type(dtype);
  const bool f64 = dtype == DType::Float64;
  // float32 GEMMs compute in full float32 (no TF32), as PyTorch's default.
  check(lt_.desc_create(&plan->desc, f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F, f64 ? CUDA_R_64F : CUDA_R_32F),
        "cublasLtMatmulDescCreate");
  const cublasOperation_t op_a = transa ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
  check(lt_.desc_set(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)), "set TRANSA");
  check(lt_.desc_set(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)), "set TRANSB");
  // cuBLASLt's A is our B: [n, k] after its op; its B is our A: [k, m]; C/D is [n, m].
  const auto rows_a = static_cast<std::uint64_t>(transa ? k : n), cols_a = static_cast<std::uint64_t>(transa ? n : k);
  const auto rows_b = static_cast<std::uint64_t>(transb ? m : k), cols_b = static_cast<std::uint64_t>(transb ? k : m);
  check(lt_.layout_create(&plan->a, type, rows_a, cols_a, lda), "layout A");
  check(lt_.layout_create(&plan->b, type, rows_b, cols_b, ldb), "layout B");
  check(lt_.layout_create(&plan->c, type, static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(m), ldc),
        "layout C");

  cublasLtMatmulPreference_t raw_preference = nullptr;
  check(lt_.preference_create(&raw_preference), "cublasLtMatmulPreferenceCreate");
  const std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, decltype(lt_.preference_destroy)> owned_preference(
      raw_preference, lt_.preference_destroy);
  cublasLtMatmulPreference_t preference = owned_preference.get();
  const auto set_preference = [&](cublasLtMatmulPreferenceAttributes_t attribute, auto value) {
    check(lt_.preference_set(preference, attribute, &value, sizeof(value)), "set preference");
  };
  set_preference(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, static_cast<std::uint64_t>(workspace_bytes_));
  set_preference(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, static_cast<std::uint32_t>(align_b));
  set_preference(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, static_cast<std::uint32_t>(align_a));
  set_preference(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, static_cast<std::uint32_t>(align_c));
  set_preference(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, static_cast<std::uint32_t>(align_c));

  const auto find_algorithm = [&](cublasLtEpilogue_t mode) {
    check(lt_.desc_set(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &mode, sizeof(mode)), "set EPILOGUE");
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t status = lt_.heuristic(static_cast<cublasLtHandle_t>(handle_), plan->desc, plan->a, plan->b,
                                                plan->c, plan->c, preference, 1, &result, &found);
    if (status != CUBLAS_STATUS_SUCCESS || found == 0) return false;
    plan->algo = result.algo;
    return true;
  };
  // The bias's and the mask's pointers as placeholders of their alignment: the heuristic reads
  // the alignment from them (run() sets each call's own pointers).
  const auto placeholder = [](int alignment) {
    return reinterpret_cast<const void*>(static_cast<std::uintptr_t>(alignment));
  };
  if (epilogue & (kBias | kRowSumsOfA | kColumnSums)) {
    const void* aligned = placeholder(align_vector);
    check(lt_.desc_set(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &aligned, sizeof(aligned)), "set BIAS_POINTER");
  }
  if (epilogue & (kWriteReluMask | kReadReluMask)) {
    const auto aux_ld = static_cast<std::int64_t>(relu_mask_row_bytes(n) * 8);  // in bits (relu_mask.h)
    const void* aligned = placeholder(align_mask);
    check(lt_.desc_set(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)), "set AUX_LD");
    check(lt_.desc_set(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aligned, sizeof(aligned)),
          "set AUX_POINTER");
  }
  bool ok = find_algorithm(cublaslt_epilogue(epilogue).value);
  if (!ok && epilogue != 0) {  // float64 and some shapes: a plain GEMM, then our epilogue kernels
    plan->fused_epilogue = false;
    ok = find_algorithm(CUBLASLT_EPILOGUE_DEFAULT);
    // Said once per plan (float64 has no fused epilogues at all): a GPU run's log shows which
    // epilogues ran as our kernels rather than in cuBLASLt.
    if (ok && !f64) {
      const std::string message = "accel: cuBLASLt has no " + std::string(cublaslt_epilogue(epilogue).name) +
                                  " algorithm for a " + std::string(dtype_name(dtype)) + " GEMM [" + std::to_string(m) +
                                  ", " + std::to_string(k) + "] x [" + std::to_string(k) + ", " + std::to_string(n) +
                                  "]; its epilogue runs as separate kernels\n";
      std::fputs(message.c_str(), stderr);
    }
  }
  if (!ok) {
    throw DeviceError("cuBLASLt has no algorithm for a " + std::string(dtype_name(dtype)) + " GEMM of [" +
                      std::to_string(m) + ", " + std::to_string(k) + "] x [" + std::to_string(k) + ", " +
                      std::to_string(n) + "] on cuda:" + std::to_string(device_) + " (" + lt_.path + ")");
  }
  (void)accumulate;
  slot = std::move(plan);
  return *slot;
}

void GemmEngine::run(const TensorDesc& a, const TensorDesc& b, const TensorDesc& c, const GemmEpilogue& epilogue,
                     cudaStream_t stream) {
  const std::int64_t m = c.size(0), n = c.size(1), k = a.size(1);
  const TensorDesc* sums = epilogue.a_row_sums;
  const TensorDesc* mask = epilogue.relu_mask;
  if (sums && (epilogue.bias || epilogue.relu)) throw ValueError("cuda gemm: a_row_sums with a bias or ReLU epilogue");
  check_relu_mask_epilogue(c, epilogue, "cuda");
  // A's row sums by our sum kernel, where cuBLASLt does not write them.
  const auto row_sums_kernel = [&] {
    const RowSumsViews views = row_sums_views(a, *sums);
    launch_sum(views.in, views.out, stream);
  };
  // The mask's part by our kernels, after the bias and ReLU: the mask written, or applied and
  // C's column sums taken.
  const auto relu_mask_kernels = [&] {
    launch_relu_mask(c, *mask, epilogue.relu, stream);
    if (!epilogue.relu && epilogue.bias_gradient) {
      const RowSumsViews views = column_sums_views(c, *epilogue.bias_gradient);
      launch_sum(views.in, views.out, stream);
    }
  };
  if (m == 0 || n == 0 || k == 0) {  // no GEMM to run: C = epilogue(beta C) (empty when m or n is 0)
    if (m > 0 && n > 0) launch_bias_relu(c, epilogue.bias, epilogue.relu, epilogue.beta == 0.0f, stream);
    if (sums && m > 0) row_sums_kernel();
    if (mask) relu_mask_kernels();  // a bias gradient of zeros when m is 0
    return;
  }
  DeviceGuard guard(device_);
  const Operand ours_b = column_major(b), ours_a = column_major(a);
  const std::int64_t ldc = std::max<std::int64_t>({c.stride(0), n, 1});
  // cuBLASLt's bias (and bias gradient) must be contiguous and 16-byte aligned; otherwise our
  // kernels do that part. (Its fused ReLU may map NaN to 0 where the CPU and our kernel keep
  // NaN: a diverged step either way.) The row sums of our A are the bias gradient over its
  // second operand's k: BGRADB, [m] = the columns of its column-major D [n, m].
  const bool bias_fusable = epilogue.bias && epilogue.bias->stride(0) == 1 && alignment_of(epilogue.bias->data) >= 16;
  const bool sums_fusable = sums && alignment_of(sums->data) >= 16;
  const TensorDesc* column_sums = mask && !epilogue.relu ? epilogue.bias_gradient : nullptr;
  const bool column_sums_fusable = column_sums && alignment_of(column_sums->data) >= 16;
  const int fused_epilogue =
      (bias_fusable ? kBias : 0) | (epilogue.relu ? kRelu : 0) | (sums_fusable ? kRowSumsOfA : 0) |
      (mask ? (epilogue.relu ? kWriteReluMask : kReadReluMask) : 0) | (column_sums_fusable ? kColumnSums : 0);
  const bool unfusable =
      (epilogue.bias && !bias_fusable) || (sums && !sums_fusable) || (column_sums && !column_sums_fusable);
  const int mode = unfusable ? 0 : fused_epilogue;
  // The one vector the fused epilogue reads or writes (cuBLASLt's BIAS_POINTER).
  const TensorDesc* epilogue_vector = (mode & kRowSumsOfA)   ? sums
                                      : (mode & kColumnSums) ? column_sums
                                      : (mode & kBias)       ? epilogue.bias
                                                             : nullptr;
  const Key key{static_cast<int>(c.dtype),
                ours_b.transpose,
                ours_a.transpose,
                m,
                n,
                k,
                ours_b.ld,
                ours_a.ld,
                ldc,
                mode,
                epilogue.beta != 0.0f,
                alignment_of(a.data),
                alignment_of(b.data),
                alignment_of(c.data),
                epilogue_vector ? alignment_of(epilogue_vector->data) : 0,
                mask ? alignment_of(mask->data) : 0};
  std::lock_guard lock(mutex_);
  GemmPlan& plan = plan_for(key);
  const bool fused = plan.fused_epilogue && mode != 0;
  if (fused && epilogue_vector) {  // the bias read, or a bias gradient written
    const void* bias = epilogue_vector->data;
    check(lt_.desc_set(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), "set BIAS_POINTER");
  }
  if (fused && mask) {
    const void* aux = mask->data;
    check(lt_.desc_set(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)), "set AUX_POINTER");
  }
  const double alpha64 = 1.0, beta64 = epilogue.beta;
  const float alpha32 = 1.0f, beta32 = epilogue.beta;
  const bool f64 = c.dtype == DType::Float64;
  check(
      lt_.matmul(static_cast<cublasLtHandle_t>(handle_), plan.desc, f64 ? static_cast<const void*>(&alpha64) : &alpha32,
                 b.data, plan.a, a.data, plan.b, f64 ? static_cast<const void*>(&beta64) : &beta32, c.data, plan.c,
                 c.data, plan.c, &plan.algo, workspace_, workspace_bytes_, stream),
      "cublasLtMatmul");
  // What the GEMM did not fuse: the whole epilogue (an unfusable bias or bias gradient turns all
  // of it off).
  if (fused) return;
  launch_bias_relu(c, epilogue.bias, epilogue.relu, false, stream);
  if (sums) row_sums_kernel();
  if (mask) relu_mask_kernels();
}

}  // namespace accel::cuda_backend
