// The suite gives the same answers inside an accel runtime (which sets ACCEL_DEVICE,
// ACCEL_SIM_MEMORY, ACCEL_MEMORY_FRACTION, ...) or a shell with accel's client settings as on a
// bare machine: before any test runs, the variables accel reads are cleared. Tests that need one
// set it themselves; commands they start inherit the cleared environment.
#include <cstdlib>
#include <initializer_list>

namespace {

const bool cleared = [] {
  for (const char* name : {"ACCEL_DEVICE", "ACCEL_SIM_MEMORY", "ACCEL_SIMULATED", "ACCEL_MEMORY_FRACTION",
                           "ACCEL_ALLOC_CONF", "ACCEL_NVML_LIBRARY", "ACCEL_USAGE_DIR", "ACCEL_SERVER", "ACCEL_TOKEN",
                           "ACCEL_RUNTIME_ID", "ACCEL_NUM_THREADS", "ACCEL_TPU_ADDR", "TPU_NAME", "TPU_LIBRARY_PATH"}) {
    unsetenv(name);
  }
  return true;
}();

}  // namespace
