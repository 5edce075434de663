#include "accel/hw/tpu_info.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace accel::hw {

TpuInfo query_tpu(const std::string& dev_root) {
  TpuInfo tpu;
  for (const char* variable : {"ACCEL_TPU_ADDR", "COLAB_TPU_ADDR", "TPU_NAME"}) {
    if (const char* value = std::getenv(variable); value && *value) {
      tpu.address = value;
      tpu.address_variable = variable;
      break;
    }
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dev_root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("accel", 0) == 0) tpu.devices.push_back(entry.path().string());
  }
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(dev_root) / "vfio", ec)) {
    if (entry.path().filename() != "vfio") tpu.devices.push_back(entry.path().string());  // "vfio" is the control node
  }
  std::sort(tpu.devices.begin(), tpu.devices.end());
  std::vector<std::string> candidates;
  if (const char* path = std::getenv("TPU_LIBRARY_PATH"); path && *path) candidates.emplace_back(path);
  for (const char* path : {"/usr/lib/libtpu.so", "/usr/local/lib/libtpu.so", "/lib/libtpu.so"})
    candidates.emplace_back(path);
  for (const std::string& path : candidates) {
    if (access(path.c_str(), R_OK) == 0) {
      tpu.libtpu_path = path;
      break;
    }
  }
  return tpu;
}

}  // namespace accel::hw
