#include "accel/hw/library_versions.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <vector>

#ifdef ACCEL_WITH_CUDA
#include <cublas_api.h>  // CUBLAS_VER_MAJOR/MINOR/PATCH of the toolkit accel was built with
#endif

namespace accel::hw {
namespace {

// Where the dynamic loader would look: LD_LIBRARY_PATH, then the usual system and CUDA folders.
std::string locate(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("LD_LIBRARY_PATH")) {
    std::stringstream parts(env);
    for (std::string dir; std::getline(parts, dir, ':');) {
      if (!dir.empty()) dirs.push_back(dir);
    }
  }
  for (const char* dir : {"/usr/local/cuda/lib64", "/usr/local/cuda/lib", "/usr/lib/x86_64-linux-gnu",
                          "/usr/lib/aarch64-linux-gnu", "/usr/local/lib", "/usr/lib64", "/usr/lib"}) {
    dirs.emplace_back(dir);
  }
  for (const std::string& dir : dirs) {
    const std::string path = dir + "/" + name;
    if (access(path.c_str(), R_OK) == 0) return path;
  }
  return {};
}

// Opens a library (small ones only) and reads its version through `symbol`.
template <typename Reader>
LibraryVersion from_library(const std::string& soname, const char* symbol, Reader read) {
  LibraryVersion v;
  v.path = locate(soname);
  void* handle = dlopen(v.path.empty() ? soname.c_str() : v.path.c_str(), RTLD_LAZY | RTLD_LOCAL);
  if (!handle) return v;
  v.found = true;
  if (v.path.empty()) {
    link_map* map = nullptr;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name) v.path = map->l_name;
  }
  if (void* fn = dlsym(handle, symbol)) {
    v.version = read(fn);
    v.source = symbol;
  }
  dlclose(handle);
  return v;
}

}  // namespace

LibraryVersions query_library_versions() {
  LibraryVersions out;
  out.cudnn = from_library("libcudnn.so.9", "cudnnGetVersion", [](void* fn) {
    const std::size_t v = reinterpret_cast<std::size_t (*)()>(fn)();  // 9.13.0 -> 91300
    return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100);
  });
  out.nccl = from_library("libnccl.so.2", "ncclGetVersion", [](void* fn) {
    int v = 0;
    if (reinterpret_cast<int (*)(int*)>(fn)(&v) != 0) return std::string();
    return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100);
  });
  out.cublas.path = locate("libcublasLt.so.13");
  if (out.cublas.path.empty()) out.cublas.path = locate("libcublasLt.so.12");
  out.cublas.found = !out.cublas.path.empty();
#ifdef ACCEL_WITH_CUDA
  out.cublas.version = std::to_string(CUBLAS_VER_MAJOR) + "." + std::to_string(CUBLAS_VER_MINOR) + "." +
                       std::to_string(CUBLAS_VER_PATCH);
  out.cublas.source = "build headers";
#endif
  return out;
}

}  // namespace accel::hw
