// GEMMs on the GPU through cuBLASLt, with the bias and ReLU (and a bias gradient, a ReLU mask
// written or applied) fused into its epilogue.
// cuBLASLt is loaded at run time (dlopen), as NVML is: the accel binary starts on a machine
// without CUDA libraries, and a GPU machine whose cuBLASLt lives in a Python wheel (PyTorch's
// nvidia-cublas) is found too. ACCEL_CUBLASLT_LIBRARY names the library to use.
#pragma once

#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "accel/backends/backend.h"

namespace accel::cuda_backend {

struct CublasLt;  // the loaded library's entry points (cuda_gemm.cpp)
struct GemmPlan;  // descriptors and the chosen algorithm for one shape

// "cuBLASLt (the path loaded)", or why none could be loaded.
std::string cublaslt_description();

class GemmEngine {
 public:
  explicit GemmEngine(int device);
  ~GemmEngine();

  // backend.h's gemm: C [m, n] = epilogue(A [m, k] B [k, n]).
  void run(const TensorDesc& a, const TensorDesc& b, const TensorDesc& c, const GemmEpilogue& epilogue,
           cudaStream_t stream);

 private:
  // dtype, transa, transb, m, n, k, lda, ldb, ldc, epilogue (the Fuse bits in cuda_gemm.cpp),
  // accumulate (beta = 1), and the alignments in bytes of A, B, C, the bias (or bias gradient)
  // and the ReLU mask (cuBLASLt's heuristics read them from the pointers they are given).
  using Key = std::tuple<int, int, int, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                         std::int64_t, int, int, int, int, int, int, int>;
  GemmPlan& plan_for(const Key& key);

  int device_;
  const CublasLt& lt_;
  void* handle_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  std::mutex mutex_;
  std::map<Key, std::unique_ptr<GemmPlan>> plans_;
};

}  // namespace accel::cuda_backend
