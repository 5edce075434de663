// The slice of NVML's C API accel uses, declared here so the build needs no NVIDIA headers or
// driver: libnvidia-ml.so.1 is opened at run time. Struct layouts follow nvml.h (CUDA 12/13);
// the static_asserts in nvml.cpp pin their sizes.
#pragma once

#include <cstdint>

namespace accel::hw::nvml_api {

using Return = int;                   // nvmlReturn_t
using Device = struct DeviceOpaque*;  // nvmlDevice_t

inline constexpr Return kSuccess = 0;
inline constexpr Return kErrorInsufficientSize = 7;
inline constexpr Return kErrorNotSupported = 3;

struct Memory {  // nvmlMemory_t
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

// nvmlMemory_v2_t (drivers r510+): adds the memory the driver and firmware reserve, which the
// v1 struct counts as used; nvidia-smi reports used = total - free - reserved.
struct MemoryV2 {
  unsigned int version;
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
};
// NVML_STRUCT_VERSION(Memory, 2): the struct's size with the version in the top byte.
inline constexpr unsigned int kMemoryV2Version = static_cast<unsigned int>(sizeof(MemoryV2)) | (2u << 24);

struct Utilization {  // nvmlUtilization_t
  unsigned int gpu;
  unsigned int memory;
};

struct PciInfo {  // nvmlPciInfo_t (v3)
  char bus_id_legacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pci_device_id;
  unsigned int pci_sub_system_id;
  char bus_id[32];
};

struct ProcessInfo {  // nvmlProcessInfo_t as the _v2/_v3 process queries fill it
  unsigned int pid;
  unsigned long long used_gpu_memory;
  unsigned int gpu_instance_id;
  unsigned int compute_instance_id;
};

struct ProcessInfoV1 {  // nvmlProcessInfo_v1_t, for the unversioned query of older drivers
  unsigned int pid;
  unsigned long long used_gpu_memory;
};

// nvmlTemperatureSensors_t NVML_TEMPERATURE_GPU; nvmlMemoryErrorType_t UNCORRECTED;
// nvmlEccCounterType_t AGGREGATE.
inline constexpr int kTemperatureGpu = 0;
inline constexpr int kClockGraphics = 0;  // nvmlClockType_t
inline constexpr int kClockSm = 1;
inline constexpr int kClockMemory = 2;
inline constexpr int kMemoryErrorUncorrected = 1;
inline constexpr int kEccCounterAggregate = 1;

// NVML's return codes by name (nvmlReturn_t), for messages.
const char* return_name(Return code);

}  // namespace accel::hw::nvml_api
