// TPU discovery: the address a TPU runtime gives (Colab's COLAB_TPU_ADDR and friends), the
// device files a TPU VM has, and whether the PJRT TPU plugin (libtpu.so) is installed.
#pragma once

#include <string>
#include <vector>

namespace accel::hw {

struct TpuInfo {
  std::string address;               // host:port, from the first of the variables below that is set
  std::string address_variable;      // ACCEL_TPU_ADDR, COLAB_TPU_ADDR or TPU_NAME
  std::vector<std::string> devices;  // /dev/accel* and /dev/vfio/<group> entries
  std::string libtpu_path;           // where libtpu.so was found, or ""
  bool present() const { return !address.empty() || !devices.empty(); }
};

// `dev_root` is "/dev" except in tests.
TpuInfo query_tpu(const std::string& dev_root = "/dev");

}  // namespace accel::hw
