// What NVML reports about the machine's NVIDIA GPUs, as plain values. Fields NVML cannot give
// on a device (not supported, or the function is missing from an older driver) are empty
// optionals and print as "N/A", as nvidia-smi does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace accel::hw {

struct GpuProcess {
  unsigned int gpu_index = 0;
  unsigned int pid = 0;
  std::string name;                          // /proc/PID/comm, or NVML's name for it
  std::optional<std::uint64_t> used_memory;  // bytes
};

struct GpuInfo {
  unsigned int index = 0;
  std::string name;
  std::string uuid;
  std::string pci_bus_id;
  std::uint64_t memory_total = 0;  // bytes
  std::uint64_t memory_used = 0;   // as nvidia-smi: total - free - reserved
  std::uint64_t memory_free = 0;
  std::uint64_t memory_reserved = 0;  // by the driver and firmware (NVML's v2 memory query; 0 on older drivers)
  std::optional<unsigned int> utilization_gpu;     // percent
  std::optional<unsigned int> utilization_memory;  // percent
  std::optional<unsigned int> temperature_c;
  std::optional<double> power_draw_w;
  std::optional<double> power_limit_w;
  std::optional<unsigned int> clock_sm_mhz, clock_memory_mhz, clock_graphics_mhz;  // current
  std::optional<unsigned int> max_clock_sm_mhz, max_clock_memory_mhz, max_clock_graphics_mhz;
  std::optional<int> performance_state;     // 0 = P0 (full speed)
  std::optional<std::string> compute_mode;  // Default, Exclusive_Process, Prohibited
  std::optional<bool> mig_enabled;
  std::optional<std::uint64_t> ecc_uncorrected;
  std::optional<int> compute_capability_major, compute_capability_minor;
  std::string catalog_name;  // the accelerator catalog's entry this GPU matched ("A100 80GB"), or ""
};

struct GpuReport {
  bool available = false;  // NVML loaded and initialised
  std::string error;       // why not: "libnvidia-ml.so.1 not found", "NVML_ERROR_DRIVER_NOT_LOADED", ...
  std::string library;     // the path that was opened
  std::string driver_version;
  std::string cuda_driver_version;  // "12.4": the CUDA version the driver supports
  std::vector<GpuInfo> gpus;
  std::vector<GpuProcess> processes;
  std::vector<std::string> warnings;  // non-fatal NVML errors, by function and name
};

// Queries NVML. Never throws for a missing library, driver or device: the report says why.
// The library is ACCEL_NVML_LIBRARY when set (tests point it at a fake), else
// libnvidia-ml.so.1 from the loader's search path.
GpuReport query_gpus();

}  // namespace accel::hw
