// hw/ without a GPU: NVML through the fake library (tests/hw/fake_nvml.cpp), the real no-GPU
// path, the catalog, host facts, TPU discovery and the CUDA query API.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "accel/core/error.h"
#include "accel/hw/catalog.h"
#include "accel/hw/cuda_api.h"
#include "accel/hw/snapshot.h"

using namespace accel;

namespace {

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string comm_of(unsigned int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

constexpr std::uint64_t kMiB = 1024ull * 1024ull;

}  // namespace

TEST(Nvml, FakeLibraryReportsBothGpusFieldByField) {
  ScopedEnv lib("ACCEL_NVML_LIBRARY", FAKE_NVML_PATH);
  const hw::GpuReport r = hw::query_gpus();
  ASSERT_TRUE(r.available) << r.error;
  EXPECT_EQ(r.driver_version, "550.54.15");
  EXPECT_EQ(r.cuda_driver_version, "12.4");
  ASSERT_EQ(r.gpus.size(), 2u);
  const hw::GpuInfo& t4 = r.gpus[0];
  EXPECT_EQ(t4.name, "Tesla T4");
  EXPECT_EQ(t4.catalog_name, "T4");
  EXPECT_EQ(t4.uuid, "GPU-11111111-2222-3333-4444-555555555555");
  EXPECT_EQ(t4.pci_bus_id, "00000000:00:04.0");
  EXPECT_EQ(t4.memory_total, 15360 * kMiB);
  EXPECT_EQ(t4.memory_used, 0u);  // nvidia-smi's "used": the driver's reserved memory apart (NVML v2)
  EXPECT_EQ(t4.memory_reserved, 256 * kMiB);
  EXPECT_EQ(t4.memory_free, (15360 - 256) * kMiB);
  EXPECT_EQ(t4.clock_sm_mhz, 300u);
  EXPECT_EQ(t4.max_clock_sm_mhz, 1410u);
  EXPECT_EQ(t4.clock_memory_mhz, 1593u);
  EXPECT_EQ(t4.utilization_gpu, 0u);
  EXPECT_EQ(t4.temperature_c, 41u);
  EXPECT_DOUBLE_EQ(*t4.power_draw_w, 9.0);
  EXPECT_DOUBLE_EQ(*t4.power_limit_w, 70.0);
  EXPECT_EQ(t4.performance_state, 8);
  EXPECT_EQ(t4.compute_mode, "Default");
  EXPECT_EQ(t4.mig_enabled, false);
  EXPECT_EQ(t4.ecc_uncorrected, 0u);
  EXPECT_EQ(t4.compute_capability_major, 7);
  EXPECT_EQ(t4.compute_capability_minor, 5);
  const hw::GpuInfo& a100 = r.gpus[1];
  EXPECT_EQ(a100.name, "NVIDIA A100-SXM4-80GB");
  EXPECT_EQ(a100.catalog_name, "A100 80GB");
  EXPECT_EQ(a100.memory_used, 2048 * kMiB);
  EXPECT_EQ(a100.utilization_gpu, 37u);
  EXPECT_EQ(a100.utilization_memory, 12u);
  EXPECT_DOUBLE_EQ(*a100.power_draw_w, 123.456);
  EXPECT_EQ(a100.compute_mode, "Exclusive_Process");
  EXPECT_EQ(a100.mig_enabled, true);
  EXPECT_EQ(a100.ecc_uncorrected, 2u);
  ASSERT_EQ(r.processes.size(), 1u);
  EXPECT_EQ(r.processes[0].gpu_index, 1u);
  EXPECT_EQ(r.processes[0].pid, 1u);
  EXPECT_EQ(r.processes[0].name, comm_of(1));
  EXPECT_EQ(r.processes[0].used_memory, 2048 * kMiB);
  EXPECT_TRUE(r.warnings.empty());
}

TEST(Nvml, DriverNotLoadedIsReportedByName) {
  ScopedEnv lib("ACCEL_NVML_LIBRARY", FAKE_NVML_PATH);
  ScopedEnv mode("FAKE_NVML_MODE", "driver_not_loaded");
  const hw::GpuReport r = hw::query_gpus();
  EXPECT_FALSE(r.available);
  EXPECT_EQ(r.error, "nvmlInit returned NVML_ERROR_DRIVER_NOT_LOADED");
}

TEST(Nvml, AGrowingProcessListIsRetried) {
  ScopedEnv lib("ACCEL_NVML_LIBRARY", FAKE_NVML_PATH);
  ScopedEnv mode("FAKE_NVML_MODE", "insufficient_size");
  const hw::GpuReport r = hw::query_gpus();
  ASSERT_EQ(r.processes.size(), 1u);
  EXPECT_TRUE(r.warnings.empty());
}

TEST(Nvml, UnsupportedFieldsAreEmptyAndOtherErrorsAreWarnings) {
  ScopedEnv lib("ACCEL_NVML_LIBRARY", FAKE_NVML_PATH);
  {
    ScopedEnv mode("FAKE_NVML_MODE", "no_temperature");
    const hw::GpuReport r = hw::query_gpus();
    EXPECT_FALSE(r.gpus[0].temperature_c.has_value());
    EXPECT_TRUE(r.warnings.empty());
  }
  ScopedEnv mode("FAKE_NVML_MODE", "gpu_lost_power");
  const hw::GpuReport r = hw::query_gpus();
  EXPECT_FALSE(r.gpus[0].power_draw_w.has_value());
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_EQ(r.warnings[0], "GPU 0: nvmlDeviceGetPowerUsage returned NVML_ERROR_GPU_IS_LOST");
}

TEST(Nvml, AnOlderDriverWithoutVersionedOrOptionalFunctions) {
  ScopedEnv lib("ACCEL_NVML_LIBRARY", FAKE_NVML_MINIMAL_PATH);
  const hw::GpuReport r = hw::query_gpus();
  ASSERT_TRUE(r.available) << r.error;
  ASSERT_EQ(r.gpus.size(), 2u);
  EXPECT_EQ(r.gpus[1].name, "NVIDIA A100-SXM4-80GB");
  EXPECT_FALSE(r.gpus[1].mig_enabled.has_value());
  EXPECT_FALSE(r.gpus[1].ecc_uncorrected.has_value());
  EXPECT_FALSE(r.gpus[1].compute_capability_major.has_value());
  EXPECT_EQ(r.cuda_driver_version, "");
  ASSERT_EQ(r.processes.size(), 1u);  // through the unversioned 16-byte process records
  EXPECT_EQ(r.processes[0].used_memory, 2048 * kMiB);
}

TEST(Nvml, ALibraryWithoutNvmlInitIsNotUsable) {
  ScopedEnv lib("ACCEL_NVML_LIBRARY", BROKEN_NVML_PATH);
  const hw::GpuReport r = hw::query_gpus();
  EXPECT_FALSE(r.available);
  EXPECT_NE(r.error.find("NVML_ERROR_FUNCTION_NOT_FOUND"), std::string::npos) << r.error;
}

TEST(Nvml, TheRealLibraryIsAbsentOnThisMachine) {
  if (void* real = dlopen("libnvidia-ml.so.1", RTLD_LAZY)) {
    dlclose(real);
    GTEST_SKIP() << "an NVIDIA driver is installed here: the no-GPU path cannot be observed";
  }
  unsetenv("ACCEL_NVML_LIBRARY");
  const hw::GpuReport r = hw::query_gpus();
  EXPECT_FALSE(r.available);
  EXPECT_EQ(r.error, "libnvidia-ml.so.1 not found (no NVIDIA driver installed)");
  EXPECT_TRUE(r.gpus.empty());
}

TEST(Catalog, MatchesByWholeModelNameAndMemory) {
  EXPECT_STREQ(hw::match_catalog("Tesla T4", 16 * 1000 * kMiB)->name, "T4");
  EXPECT_STREQ(hw::match_catalog("NVIDIA A100-SXM4-40GB", 40ull << 30)->name, "A100 40GB");
  EXPECT_STREQ(hw::match_catalog("NVIDIA A100 80GB PCIe", 80ull << 30)->name, "A100 80GB");
  EXPECT_STREQ(hw::match_catalog("Tesla V100-SXM2-32GB", 32ull << 30)->name, "V100 32GB");
  EXPECT_STREQ(hw::match_catalog("NVIDIA L4", 23034 * kMiB)->name, "L4");
  EXPECT_STREQ(hw::match_catalog("NVIDIA H100 80GB HBM3", 81559 * kMiB)->name, "H100");
  EXPECT_STREQ(hw::match_catalog("NVIDIA H200", 143771 * kMiB)->name, "H200");
  EXPECT_EQ(hw::match_catalog("NVIDIA L40S", 46068 * kMiB), nullptr);
  EXPECT_EQ(hw::match_catalog("NVIDIA GeForce RTX 4090", 24564 * kMiB), nullptr);
  EXPECT_STREQ(hw::find_catalog_type("v5e")->kind, "tpu");
  EXPECT_EQ(hw::find_catalog_type("k80"), nullptr);
  for (const hw::AcceleratorSpec& spec : hw::accelerator_catalog()) {
    EXPECT_GT(spec.memory_gb, 0) << spec.name;
    EXPECT_GT(spec.half_tflops, 0) << spec.name;
    EXPECT_STRNE(spec.best_for, "") << spec.name;
  }
}

TEST(HostInfo, CpuMemoryAndDiskAgreeWithTheSystem) {
  const hw::CpuInfo cpu = hw::query_cpu();
  EXPECT_EQ(cpu.logical_cores, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_GE(cpu.logical_cores, cpu.physical_cores);
  EXPECT_FALSE(cpu.model.empty());
  const hw::MemoryInfo memory = hw::query_memory();
  EXPECT_GT(memory.total, 0u);
  EXPECT_EQ(memory.used, memory.total - memory.available);
  const hw::DiskInfo disk = hw::query_disk("/");
  EXPECT_GT(disk.total, 0u);
  EXPECT_LE(disk.free, disk.total);
}

TEST(TpuInfo, AddressFromTheEnvironmentAndDeviceFiles) {
  const auto root = std::filesystem::temp_directory_path() / ("accel_tpu_" + std::to_string(getpid()));
  std::filesystem::create_directories(root / "vfio");
  std::ofstream(root / "accel0").put('x');
  std::ofstream(root / "vfio" / "vfio").put('x');
  std::ofstream(root / "vfio" / "12").put('x');
  {
    ScopedEnv addr("COLAB_TPU_ADDR", "10.0.0.2:8470");
    const hw::TpuInfo tpu = hw::query_tpu(root.string());
    EXPECT_TRUE(tpu.present());
    EXPECT_EQ(tpu.address, "10.0.0.2:8470");
    EXPECT_EQ(tpu.address_variable, "COLAB_TPU_ADDR");
    EXPECT_EQ(tpu.devices, (std::vector<std::string>{(root / "accel0").string(), (root / "vfio" / "12").string()}));
  }
  unsetenv("ACCEL_TPU_ADDR");
  unsetenv("TPU_NAME");
  const hw::TpuInfo none = hw::query_tpu((root / "nothing").string());
  EXPECT_FALSE(none.present());
  std::filesystem::remove_all(root);
}

TEST(CudaApi, AnswersWithoutAGpu) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_FALSE(cuda::is_available());
  EXPECT_THROW(cuda::get_device_name(0), DeviceError);
  EXPECT_THROW(cuda::get_device_properties(0), DeviceError);
#ifdef ACCEL_WITH_CUDA
  EXPECT_TRUE(version::cuda().has_value());
#else
  EXPECT_FALSE(version::cuda().has_value());
  EXPECT_FALSE(backends::cudnn::is_available());
#endif
}
