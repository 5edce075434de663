// Where a PJRT plugin (XLA's plugin C API: libtpu, JAX's CUDA plugin, OpenXLA's CPU plugin) is
// installed, found without loading it: `accel info` and the runtime service use this, and
// backends/xla/ loads what it finds.
#pragma once

#include <string>

#include "accel/core/error.h"

namespace accel::hw {

// No plugin where one was asked for: the message lists every place looked and the install.
class PjrtPluginError : public DeviceError {
 public:
  using DeviceError::DeviceError;
};

// Where a plugin was found (an absolute path) and how ("ACCEL_PJRT_PLUGIN=...", "named cpu: ...").
struct PjrtPluginLocation {
  std::string path;
  std::string found_by;
  bool is_libtpu() const;  // a TPU's own plugin (libtpu.so), not a stand-in
  // Why tenants' jobs (other uids) could not load it or could replace it: not readable by
  // others, or the file or a folder above it writable by others. "" when safe.
  std::string unsafe_for_tenants() const;
};

// `spec`: a path to a plugin .so, or a name: "cpu" (PyPI xla-cpu-pjrt), "tpu" (libtpu: PyPI
// libtpu, TPU_LIBRARY_PATH, /lib/libtpu.so), "cuda" (PyPI jax-cuda13-pjrt / jax-cuda12-pjrt).
// Empty: ACCEL_PJRT_PLUGIN when set, else a TPU's libtpu when one is installed, else "cpu".
// "none" (ACCEL_PJRT_PLUGIN=none) turns PJRT off. Names are looked up in the Python package
// folders of ACCEL_PJRT_SEARCH_PATH (':'-separated site-packages folders), $VIRTUAL_ENV, the
// build's own pjrt-venv, ~/.local, /usr/local and the system's. Throws PjrtPluginError naming
// every place it looked.
PjrtPluginLocation find_pjrt_plugin(const std::string& spec = "");

}  // namespace accel::hw
