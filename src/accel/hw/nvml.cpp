// query_gpus through NVML loaded at run time (dlopen), so one binary runs with and without a
// driver. Versioned entry points (nvmlInit_v2, ..._v3) are tried first, older names after.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "accel/hw/catalog.h"
#include "accel/hw/gpu_info.h"
#include "accel/hw/nvml_api.h"

namespace accel::hw {
namespace nvml_api {

static_assert(sizeof(Memory) == 24, "nvmlMemory_t layout");
static_assert(sizeof(MemoryV2) == 40 && kMemoryV2Version == 0x02000028, "nvmlMemory_v2_t layout and version");
static_assert(sizeof(Utilization) == 8, "nvmlUtilization_t layout");
static_assert(sizeof(PciInfo) == 68, "nvmlPciInfo_t layout");
static_assert(sizeof(ProcessInfo) == 24, "nvmlProcessInfo_t layout");
static_assert(sizeof(ProcessInfoV1) == 16, "nvmlProcessInfo_v1_t layout");

const char* return_name(Return code) {
  switch (code) {
    case 0:
      return "NVML_SUCCESS";
    case 1:
      return "NVML_ERROR_UNINITIALIZED";
    case 2:
      return "NVML_ERROR_INVALID_ARGUMENT";
    case 3:
      return "NVML_ERROR_NOT_SUPPORTED";
    case 4:
      return "NVML_ERROR_NO_PERMISSION";
    case 5:
      return "NVML_ERROR_ALREADY_INITIALIZED";
    case 6:
      return "NVML_ERROR_NOT_FOUND";
    case 7:
      return "NVML_ERROR_INSUFFICIENT_SIZE";
    case 8:
      return "NVML_ERROR_INSUFFICIENT_POWER";
    case 9:
      return "NVML_ERROR_DRIVER_NOT_LOADED";
    case 10:
      return "NVML_ERROR_TIMEOUT";
    case 11:
      return "NVML_ERROR_IRQ_ISSUE";
    case 12:
      return "NVML_ERROR_LIBRARY_NOT_FOUND";
    case 13:
      return "NVML_ERROR_FUNCTION_NOT_FOUND";
    case 14:
      return "NVML_ERROR_CORRUPTED_INFOROM";
    case 15:
      return "NVML_ERROR_GPU_IS_LOST";
    case 16:
      return "NVML_ERROR_RESET_REQUIRED";
    case 17:
      return "NVML_ERROR_OPERATING_SYSTEM";
    case 18:
      return "NVML_ERROR_LIB_RM_VERSION_MISMATCH";
    case 19:
      return "NVML_ERROR_IN_USE";
    case 20:
      return "NVML_ERROR_MEMORY";
    case 21:
      return "NVML_ERROR_NO_DATA";
    case 22:
      return "NVML_ERROR_VGPU_ECC_NOT_ENABLED";
    case 23:
      return "NVML_ERROR_INSUFFICIENT_RESOURCES";
    case 24:
      return "NVML_ERROR_FREQ_NOT_SUPPORTED";
    case 25:
      return "NVML_ERROR_ARGUMENT_VERSION_MISMATCH";
    case 26:
      return "NVML_ERROR_DEPRECATED";
    case 27:
      return "NVML_ERROR_NOT_READY";
    case 28:
      return "NVML_ERROR_GPU_NOT_FOUND";
    case 29:
      return "NVML_ERROR_INVALID_STATE";
    case 999:
      return "NVML_ERROR_UNKNOWN";
    default:
      return "NVML_ERROR_(unrecognised code)";
  }
}

}  // namespace nvml_api

namespace {

using namespace nvml_api;

struct LibraryCloser {
  void operator()(void* handle) const { dlclose(handle); }
};

// The NVML session: the library handle and, once initialised, nvmlShutdown on destruction.
class Nvml {
 public:
  explicit Nvml(void* handle) : handle_(handle) {}
  ~Nvml() {
    if (initialised_) {
      if (auto shutdown = symbol<Return (*)()>({"nvmlShutdown"})) shutdown();
    }
  }

  // The first of `names` the library exports, or null.
  template <typename Fn>
  Fn symbol(std::initializer_list<const char*> names) const {
    for (const char* name : names) {
      if (void* p = dlsym(handle_.get(), name)) return reinterpret_cast<Fn>(p);
    }
    return nullptr;
  }

  void set_initialised() { initialised_ = true; }

 private:
  std::unique_ptr<void, LibraryCloser> handle_;
  bool initialised_ = false;
};

std::string process_name(unsigned int pid) {
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

std::string compute_mode_name(int mode) {
  switch (mode) {
    case 0:
      return "Default";
    case 1:
      return "Exclusive_Thread";
    case 2:
      return "Prohibited";
    case 3:
      return "Exclusive_Process";
    default:
      return "Unknown";
  }
}

// Calls an optional per-device query: a missing function or NOT_SUPPORTED leaves the field
// empty; any other error is recorded as a warning naming the function and the code.
template <typename Fn, typename... Args>
bool optional_query(GpuReport& report, unsigned int index, const char* what, Fn fn, Args... args) {
  if (!fn) return false;
  const Return rc = fn(args...);
  if (rc == kSuccess) return true;
  if (rc != kErrorNotSupported) {
    report.warnings.push_back("GPU " + std::to_string(index) + ": " + what + " returned " + return_name(rc));
  }
  return false;
}

void query_processes(const Nvml& lib, Device device, GpuReport& report, unsigned int index) {
  // The _v3/_v2 queries fill 24-byte records; the unversioned one of older drivers 16-byte ones.
  auto query_v2 = lib.symbol<Return (*)(Device, unsigned int*, ProcessInfo*)>(
      {"nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"});
  auto query_v1 =
      lib.symbol<Return (*)(Device, unsigned int*, ProcessInfoV1*)>({"nvmlDeviceGetComputeRunningProcesses"});
  const auto add = [&](unsigned int pid, unsigned long long memory) {
    GpuProcess p;
    p.gpu_index = index;
    p.pid = pid;
    p.name = process_name(pid);
    // NVML reports NVML_VALUE_NOT_AVAILABLE (all ones) where it cannot see a process's memory.
    if (memory != ~0ull) p.used_memory = memory;
    report.processes.push_back(p);
  };
  // A process list can grow between the size query and the read: INSUFFICIENT_SIZE says so and
  // gives the new count, so retry a few times with room to spare.
  unsigned int capacity = 16;
  for (int attempt = 0; attempt < 4; ++attempt) {
    unsigned int count = capacity;
    Return rc;
    if (query_v2) {
      std::vector<ProcessInfo> infos(capacity);
      rc = query_v2(device, &count, infos.data());
      if (rc == kSuccess) {
        for (unsigned int i = 0; i < count; ++i) add(infos[i].pid, infos[i].used_gpu_memory);
        return;
      }
    } else if (query_v1) {
      std::vector<ProcessInfoV1> infos(capacity);
      rc = query_v1(device, &count, infos.data());
      if (rc == kSuccess) {
        for (unsigned int i = 0; i < count; ++i) add(infos[i].pid, infos[i].used_gpu_memory);
        return;
      }
    } else {
      return;
    }
    if (rc != kErrorInsufficientSize) {
      if (rc != kErrorNotSupported) {
        report.warnings.push_back("GPU " + std::to_string(index) + ": nvmlDeviceGetComputeRunningProcesses returned " +
                                  return_name(rc));
      }
      return;
    }
    capacity = count + 8;
  }
  report.warnings.push_back("GPU " + std::to_string(index) + ": the process list kept growing; gave up after 4 tries");
}

// Memory as nvidia-smi shows it: the v2 query separates what the driver reserves (about 0.6 GiB
// on an H200) from what processes use; v1, on older drivers, counts it as used.
void query_memory(const Nvml& lib, Device device, unsigned int index, GpuReport& report, GpuInfo& gpu) {
  if (auto v2 = lib.symbol<Return (*)(Device, MemoryV2*)>({"nvmlDeviceGetMemoryInfo_v2"})) {
    MemoryV2 memory{};
    memory.version = kMemoryV2Version;
    if (optional_query(report, index, "nvmlDeviceGetMemoryInfo_v2", v2, device, &memory)) {
      gpu.memory_total = memory.total;
      gpu.memory_free = memory.free;
      gpu.memory_reserved = memory.reserved;
      const unsigned long long taken = memory.free + memory.reserved;
      gpu.memory_used = memory.total > taken ? memory.total - taken : 0;
      return;
    }
  }
  Memory memory{};
  if (optional_query(report, index, "nvmlDeviceGetMemoryInfo",
                     lib.symbol<Return (*)(Device, Memory*)>({"nvmlDeviceGetMemoryInfo"}), device, &memory)) {
    gpu.memory_total = memory.total;
    gpu.memory_used = memory.used;
    gpu.memory_free = memory.free;
  }
}

// Current and maximum SM, memory and graphics clocks (nvidia-smi's clocks.* fields).
void query_clocks(const Nvml& lib, Device device, unsigned int index, GpuReport& report, GpuInfo& gpu) {
  struct Clock {
    int type;
    std::optional<unsigned int> GpuInfo::*current;
    std::optional<unsigned int> GpuInfo::*max;
  };
  const auto current = lib.symbol<Return (*)(Device, int, unsigned int*)>({"nvmlDeviceGetClockInfo"});
  const auto max = lib.symbol<Return (*)(Device, int, unsigned int*)>({"nvmlDeviceGetMaxClockInfo"});
  for (const Clock& c : {Clock{kClockSm, &GpuInfo::clock_sm_mhz, &GpuInfo::max_clock_sm_mhz},
                         Clock{kClockMemory, &GpuInfo::clock_memory_mhz, &GpuInfo::max_clock_memory_mhz},
                         Clock{kClockGraphics, &GpuInfo::clock_graphics_mhz, &GpuInfo::max_clock_graphics_mhz}}) {
    unsigned int mhz = 0;
    if (optional_query(report, index, "nvmlDeviceGetClockInfo", current, device, c.type, &mhz)) gpu.*c.current = mhz;
    if (optional_query(report, index, "nvmlDeviceGetMaxClockInfo", max, device, c.type, &mhz)) gpu.*c.max = mhz;
  }
}

GpuInfo query_device(const Nvml& lib, Device device, unsigned int index, GpuReport& report) {
  GpuInfo gpu;
  gpu.index = index;
  char text[96] = {};
  if (optional_query(report, index, "nvmlDeviceGetName",
                     lib.symbol<Return (*)(Device, char*, unsigned int)>({"nvmlDeviceGetName"}), device, text,
                     static_cast<unsigned int>(sizeof text))) {
    gpu.name = text;
  }
  if (optional_query(report, index, "nvmlDeviceGetUUID",
                     lib.symbol<Return (*)(Device, char*, unsigned int)>({"nvmlDeviceGetUUID"}), device, text,
                     static_cast<unsigned int>(sizeof text))) {
    gpu.uuid = text;
  }
  PciInfo pci{};
  if (optional_query(report, index, "nvmlDeviceGetPciInfo",
                     lib.symbol<Return (*)(Device, PciInfo*)>({"nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2"}),
                     device, &pci)) {
    gpu.pci_bus_id = std::string(pci.bus_id, ::strnlen(pci.bus_id, sizeof pci.bus_id));
  }
  query_memory(lib, device, index, report, gpu);
  Utilization util{};
  if (optional_query(report, index, "nvmlDeviceGetUtilizationRates",
                     lib.symbol<Return (*)(Device, Utilization*)>({"nvmlDeviceGetUtilizationRates"}), device, &util)) {
    gpu.utilization_gpu = util.gpu;
    gpu.utilization_memory = util.memory;
  }
  unsigned int value = 0;
  if (optional_query(report, index, "nvmlDeviceGetTemperature",
                     lib.symbol<Return (*)(Device, int, unsigned int*)>({"nvmlDeviceGetTemperature"}), device,
                     kTemperatureGpu, &value)) {
    gpu.temperature_c = value;
  }
  if (optional_query(report, index, "nvmlDeviceGetPowerUsage",
                     lib.symbol<Return (*)(Device, unsigned int*)>({"nvmlDeviceGetPowerUsage"}), device, &value)) {
    gpu.power_draw_w = value / 1000.0;  // milliwatts
  }
  if (optional_query(report, index, "nvmlDeviceGetEnforcedPowerLimit",
                     lib.symbol<Return (*)(Device, unsigned int*)>({"nvmlDeviceGetEnforcedPowerLimit"}), device,
                     &value)) {
    gpu.power_limit_w = value / 1000.0;
  }
  query_clocks(lib, device, index, report, gpu);
  int state = 0;
  if (optional_query(report, index, "nvmlDeviceGetPerformanceState",
                     lib.symbol<Return (*)(Device, int*)>({"nvmlDeviceGetPerformanceState"}), device, &state)) {
    gpu.performance_state = state;
  }
  if (optional_query(report, index, "nvmlDeviceGetComputeMode",
                     lib.symbol<Return (*)(Device, int*)>({"nvmlDeviceGetComputeMode"}), device, &state)) {
    gpu.compute_mode = compute_mode_name(state);
  }
  unsigned int current = 0, pending = 0;
  if (optional_query(report, index, "nvmlDeviceGetMigMode",
                     lib.symbol<Return (*)(Device, unsigned int*, unsigned int*)>({"nvmlDeviceGetMigMode"}), device,
                     &current, &pending)) {
    gpu.mig_enabled = current == 1;
  }
  unsigned long long ecc = 0;
  if (optional_query(report, index, "nvmlDeviceGetTotalEccErrors",
                     lib.symbol<Return (*)(Device, int, int, unsigned long long*)>({"nvmlDeviceGetTotalEccErrors"}),
                     device, kMemoryErrorUncorrected, kEccCounterAggregate, &ecc)) {
    gpu.ecc_uncorrected = ecc;
  }
  int major = 0, minor = 0;
  if (optional_query(report, index, "nvmlDeviceGetCudaComputeCapability",
                     lib.symbol<Return (*)(Device, int*, int*)>({"nvmlDeviceGetCudaComputeCapability"}), device, &major,
                     &minor)) {
    gpu.compute_capability_major = major;
    gpu.compute_capability_minor = minor;
  }
  if (const AcceleratorSpec* spec = match_catalog(gpu.name, gpu.memory_total)) gpu.catalog_name = spec->name;
  query_processes(lib, device, report, index);
  return gpu;
}

}  // namespace

GpuReport query_gpus() {
  GpuReport report;
  const char* override_path = std::getenv("ACCEL_NVML_LIBRARY");
  report.library = override_path && *override_path ? override_path : "libnvidia-ml.so.1";
  void* handle = dlopen(report.library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    report.error = report.library + " not found (no NVIDIA driver installed)";
    return report;
  }
  Nvml lib(handle);
  auto init = lib.symbol<Return (*)()>({"nvmlInit_v2", "nvmlInit"});
  auto count_fn = lib.symbol<Return (*)(unsigned int*)>({"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"});
  auto handle_fn =
      lib.symbol<Return (*)(unsigned int, Device*)>({"nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"});
  if (!init || !count_fn || !handle_fn) {
    report.error = report.library + " lacks nvmlInit/nvmlDeviceGetCount/nvmlDeviceGetHandleByIndex (" +
                   return_name(13) + "): not a usable NVML library";
    return report;
  }
  if (const Return rc = init(); rc != kSuccess) {
    report.error = std::string("nvmlInit returned ") + return_name(rc);
    return report;
  }
  lib.set_initialised();
  report.available = true;

  char text[96] = {};
  if (auto fn = lib.symbol<Return (*)(char*, unsigned int)>({"nvmlSystemGetDriverVersion"});
      fn && fn(text, sizeof text) == kSuccess) {
    report.driver_version = text;
  }
  int cuda_version = 0;
  if (auto fn = lib.symbol<Return (*)(int*)>({"nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"});
      fn && fn(&cuda_version) == kSuccess) {
    report.cuda_driver_version = std::to_string(cuda_version / 1000) + "." + std::to_string((cuda_version % 1000) / 10);
  }
  unsigned int count = 0;
  if (const Return rc = count_fn(&count); rc != kSuccess) {
    report.error = std::string("nvmlDeviceGetCount returned ") + return_name(rc);
    report.available = false;
    return report;
  }
  for (unsigned int i = 0; i < count; ++i) {
    Device device = nullptr;
    if (const Return rc = handle_fn(i, &device); rc != kSuccess) {
      report.warnings.push_back("GPU " + std::to_string(i) + ": nvmlDeviceGetHandleByIndex returned " +
                                return_name(rc));
      continue;
    }
    report.gpus.push_back(query_device(lib, device, i, report));
  }
  return report;
}

}  // namespace accel::hw
