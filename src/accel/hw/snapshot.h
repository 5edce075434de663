// Everything hw/ knows about this machine in one value, and its JSON form (the schema of
// `accel info --json` and `accel smi --json`, documented in docs/hardware.md).
//
//   const hw::HardwareSnapshot s = hw::snapshot();
//   if (s.gpus.available) for (const auto& gpu : s.gpus.gpus) std::cout << gpu.name;
#pragma once

#include <string>

#include "accel/hw/cuda_runtime.h"
#include "accel/hw/gpu_info.h"
#include "accel/hw/host_info.h"
#include "accel/hw/library_versions.h"
#include "accel/hw/tpu_info.h"

namespace accel::hw {

struct HardwareSnapshot {
  CpuInfo cpu;
  MemoryInfo memory;
  DiskInfo disk;
  GpuReport gpus;
  CudaRuntimeInfo cuda;
  LibraryVersions libraries;
  TpuInfo tpu;
};

HardwareSnapshot snapshot();

// The `accel info --json` document (schema version 1).
std::string info_json(const HardwareSnapshot& s);
// The `accel smi --json` document: driver, CUDA, GPUs and processes.
std::string smi_json(const GpuReport& gpus);

}  // namespace accel::hw
