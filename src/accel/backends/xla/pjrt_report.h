// What `accel info` says about XLA devices: which PJRT plugin accel would use, its C API and XLA
// versions, its platform and devices, or why there is none. Never throws.
#pragma once

#include <string>
#include <vector>

#include "accel/backends/xla/pjrt.h"

namespace accel::xla {

struct PjrtReport {
  bool found = false;       // a plugin file was found
  bool loaded = false;      // ... and loaded: the fields below it are filled
  bool usable = false;      // ... and its client works
  std::string error;        // why not, when a step failed
  std::string plugin_path;  // empty when none was found
  std::string found_by;
  std::string api_version;  // the plugin's PJRT C API version ("0.81")
  std::string built_api_version;
  std::string xla_version;  // the plugin's attributes, when it has them
  std::string stablehlo_version;
  std::string platform;  // "cpu", "tpu", "cuda"
  std::string platform_version;
  std::vector<DeviceInfo> devices;
};

// Finds the plugin `spec` names (find_plugin's rules); with `load`, loads it and creates its
// client (50-400 ms for the CPU plugin's 260 MB: `accel info` does it only when asked, --xla).
PjrtReport query_pjrt(const std::string& spec = "", bool load = true);

}  // namespace accel::xla
