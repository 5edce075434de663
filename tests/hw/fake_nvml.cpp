// A test-only stand-in for libnvidia-ml.so.1 (built in tests/, never installed): two GPUs, a
// Tesla T4 and an A100 80GB, and one process on the A100, loaded through ACCEL_NVML_LIBRARY.
// FAKE_NVML_MODE switches on error paths:
//   driver_not_loaded   nvmlInit returns NVML_ERROR_DRIVER_NOT_LOADED
//   insufficient_size   the first process query says the list grew (INSUFFICIENT_SIZE)
//   no_temperature      temperatures are NOT_SUPPORTED
//   gpu_lost_power      power draw returns NVML_ERROR_GPU_IS_LOST
// Built with FAKE_NVML_MINIMAL it exports only an older driver's subset (nvmlInit, the
// unversioned queries, no MIG/ECC/compute-capability functions).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct FakeGpu {
  const char* name;
  const char* uuid;
  const char* bus_id;
  unsigned long long total, used;
  unsigned int util_gpu, util_memory, temperature, power_mw, limit_mw;
  int pstate, compute_mode, cc_major, cc_minor;
  unsigned int mig;
  unsigned long long ecc;
};

constexpr unsigned long long kMiB = 1024ull * 1024ull;
constexpr unsigned long long kReserved = 256 * kMiB;  // set aside by the driver and firmware
const FakeGpu kGpus[] = {
    {"Tesla T4", "GPU-11111111-2222-3333-4444-555555555555", "00000000:00:04.0", 15360 * kMiB, 0, 0, 0, 41, 9000, 70000,
     8, 0, 7, 5, 0, 0},
    {"NVIDIA A100-SXM4-80GB", "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "00000000:00:05.0", 81920 * kMiB, 2048 * kMiB,
     37, 12, 55, 123456, 400000, 0, 3, 8, 0, 1, 2},
};

bool mode(const char* name) {
  const char* m = std::getenv("FAKE_NVML_MODE");
  return m && std::strcmp(m, name) == 0;
}

int process_calls = 0;

struct Memory {
  unsigned long long total, free, used;
};
struct MemoryV2 {
  unsigned int version;
  unsigned long long total, reserved, free, used;
};
struct Utilization {
  unsigned int gpu, memory;
};
struct PciInfo {
  char bus_id_legacy[16];
  unsigned int domain, bus, device, pci_device_id, pci_sub_system_id;
  char bus_id[32];
};
struct ProcessInfo {
  unsigned int pid;
  unsigned long long used_gpu_memory;
  unsigned int gpu_instance_id, compute_instance_id;
};
struct ProcessInfoV1 {
  unsigned int pid;
  unsigned long long used_gpu_memory;
};

const FakeGpu* gpu_of(void* device) {
  const auto index = reinterpret_cast<std::uintptr_t>(device);
  return index >= 1 && index <= 2 ? &kGpus[index - 1] : nullptr;
}

int copy_text(const char* text, char* out, unsigned int length) {
  if (std::strlen(text) + 1 > length) return 7;  // INSUFFICIENT_SIZE
  std::strcpy(out, text);
  return 0;
}

// The one process: pid 1, 2048 MiB, on GPU 1.
template <typename Info>
int processes(void* device, unsigned int* count, Info* infos) {
  ++process_calls;
  const FakeGpu* gpu = gpu_of(device);
  if (!gpu) return 2;
  const unsigned int actual = gpu == &kGpus[1] ? 1 : 0;
  if (mode("insufficient_size") && process_calls == 1) {
    *count = 20;
    return 7;
  }
  if (*count < actual) {
    *count = actual;
    return 7;
  }
  *count = actual;
  if (actual) {
    infos[0] = Info{};
    infos[0].pid = 1;
    infos[0].used_gpu_memory = 2048 * kMiB;
  }
  return 0;
}

}  // namespace

extern "C" {

#ifdef FAKE_NVML_MINIMAL
int nvmlInit() { return mode("driver_not_loaded") ? 9 : 0; }
int nvmlDeviceGetCount(unsigned int* count) {
  *count = 2;
  return 0;
}
int nvmlDeviceGetHandleByIndex(unsigned int index, void** device) {
  if (index >= 2) return 2;
  *device = reinterpret_cast<void*>(static_cast<std::uintptr_t>(index + 1));
  return 0;
}
int nvmlDeviceGetComputeRunningProcesses(void* device, unsigned int* count, ProcessInfoV1* infos) {
  return processes(device, count, infos);
}
#else
int nvmlInit_v2() { return mode("driver_not_loaded") ? 9 : 0; }
int nvmlDeviceGetCount_v2(unsigned int* count) {
  *count = 2;
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (index >= 2) return 2;
  *device = reinterpret_cast<void*>(static_cast<std::uintptr_t>(index + 1));
  return 0;
}
int nvmlDeviceGetComputeRunningProcesses_v3(void* device, unsigned int* count, ProcessInfo* infos) {
  return processes(device, count, infos);
}
int nvmlSystemGetCudaDriverVersion_v2(int* version) {
  *version = 12040;
  return 0;
}
int nvmlDeviceGetMigMode(void* device, unsigned int* current, unsigned int* pending) {
  *current = *pending = gpu_of(device)->mig;
  return 0;
}
int nvmlDeviceGetTotalEccErrors(void* device, int, int, unsigned long long* count) {
  *count = gpu_of(device)->ecc;
  return 0;
}
int nvmlDeviceGetMemoryInfo_v2(void* device, MemoryV2* memory) {
  if (memory->version != (sizeof(MemoryV2) | (2u << 24))) return 25;  // ARGUMENT_VERSION_MISMATCH
  const FakeGpu* g = gpu_of(device);
  *memory = {memory->version, g->total, kReserved, g->total - g->used - kReserved, g->used};
  return 0;
}
// SM and graphics clocks 1410 MHz at most, memory 1593 (an A100's); the T4 idles at 300.
int nvmlDeviceGetClockInfo(void* device, int type, unsigned int* mhz) {
  const bool idle = gpu_of(device)->util_gpu == 0;
  *mhz = type == 2 ? 1593 : idle ? 300 : 1410;
  return 0;
}
int nvmlDeviceGetMaxClockInfo(void*, int type, unsigned int* mhz) {
  *mhz = type == 2 ? 1593 : 1410;
  return 0;
}
int nvmlDeviceGetCudaComputeCapability(void* device, int* major, int* minor) {
  *major = gpu_of(device)->cc_major;
  *minor = gpu_of(device)->cc_minor;
  return 0;
}
#endif

int nvmlShutdown() { return 0; }
int nvmlSystemGetDriverVersion(char* version, unsigned int length) { return copy_text("550.54.15", version, length); }
int nvmlDeviceGetName(void* device, char* name, unsigned int length) {
  return copy_text(gpu_of(device)->name, name, length);
}
int nvmlDeviceGetUUID(void* device, char* uuid, unsigned int length) {
  return copy_text(gpu_of(device)->uuid, uuid, length);
}
int nvmlDeviceGetPciInfo_v3(void* device, PciInfo* pci) {
  *pci = PciInfo{};
  std::strcpy(pci->bus_id, gpu_of(device)->bus_id);
  return 0;
}
// As a real driver: v1 counts the driver's reserved memory as used, v2 reports it apart.
int nvmlDeviceGetMemoryInfo(void* device, Memory* memory) {
  const FakeGpu* g = gpu_of(device);
  *memory = {g->total, g->total - g->used - kReserved, g->used + kReserved};
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* device, Utilization* util) {
  *util = {gpu_of(device)->util_gpu, gpu_of(device)->util_memory};
  return 0;
}
int nvmlDeviceGetTemperature(void* device, int, unsigned int* temperature) {
  if (mode("no_temperature")) return 3;
  *temperature = gpu_of(device)->temperature;
  return 0;
}
int nvmlDeviceGetPowerUsage(void* device, unsigned int* milliwatts) {
  if (mode("gpu_lost_power")) return 15;
  *milliwatts = gpu_of(device)->power_mw;
  return 0;
}
int nvmlDeviceGetEnforcedPowerLimit(void* device, unsigned int* milliwatts) {
  *milliwatts = gpu_of(device)->limit_mw;
  return 0;
}
int nvmlDeviceGetPerformanceState(void* device, int* state) {
  *state = gpu_of(device)->pstate;
  return 0;
}
int nvmlDeviceGetComputeMode(void* device, int* mode_out) {
  *mode_out = gpu_of(device)->compute_mode;
  return 0;
}

}  // extern "C"
