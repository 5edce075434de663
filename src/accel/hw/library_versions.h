// Versions of the GPU libraries a training stack uses (cuDNN, NCCL, cuBLAS) and the TPU runtime,
// found without initialising anything. Absent libraries are reported absent, not as errors.
#pragma once

#include <string>

namespace accel::hw {

struct LibraryVersion {
  bool found = false;
  std::string version;  // "9.13.0"; empty when found but the version could not be read
  std::string path;     // where it was found
  std::string source;   // how the version was read: "cudnnGetVersion", "build headers", ...
};

struct LibraryVersions {
  LibraryVersion cudnn;   // libcudnn.so.9 (cudnnGetVersion: the loader library is small)
  LibraryVersion nccl;    // libnccl.so.2 (ncclGetVersion)
  LibraryVersion cublas;  // libcublasLt.so: located only (loading it takes ~0.8 s); the version
                          // is that of the headers accel was built with, when built with CUDA
};

LibraryVersions query_library_versions();

}  // namespace accel::hw
