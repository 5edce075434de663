// The host: CPU model, cores, SIMD features, RAM, the working directory's disk, and the
// cgroup limits a container imposes (what Colab's resource monitor shows for CPU and RAM).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace accel::hw {

struct CpuInfo {
  std::string model;
  int logical_cores = 0;
  int physical_cores = 0;
  std::vector<std::string> simd;  // of: sse4_2 avx avx2 fma avx512f avx512_bf16 avx512_fp16 amx_tile amx_bf16 amx_int8
  std::optional<double> cgroup_cpu_limit;  // CPUs allowed by cgroup cpu.max, when limited
};

struct MemoryInfo {  // bytes; used = total - available, as Colab computes it
  std::uint64_t total = 0;
  std::uint64_t available = 0;
  std::uint64_t used = 0;
  std::optional<std::uint64_t> cgroup_limit;  // memory.max, when limited
};

struct DiskInfo {  // bytes, for the filesystem holding `path`
  std::string path;
  std::uint64_t total = 0;
  std::uint64_t free = 0;
  std::uint64_t used = 0;
};

// Each reads /proc and /sys (or statvfs); missing files leave fields at their defaults.
CpuInfo query_cpu();
MemoryInfo query_memory();
DiskInfo query_disk(const std::string& path = ".");

// The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (rounded up)
// and by ACCEL_NUM_THREADS when set (to share a machine by hand; runtimes do not set it yet). At
// least 1. What a thread pool should be sized to, where the machine's core count would
// oversubscribe a container or a pinned process.
int usable_cpus();

}  // namespace accel::hw
