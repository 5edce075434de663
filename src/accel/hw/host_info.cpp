#include "accel/hw/host_info.h"

#include <sched.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace accel::hw {
namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  const auto end = s.find_last_not_of(" \t\r\n");
  return begin == std::string::npos ? "" : s.substr(begin, end - begin + 1);
}

// cgroup v2 cpu.max ("200000 100000" = 2 CPUs; "max 100000" = unlimited), else v1's quota.
std::optional<double> cgroup_cpus() {
  std::istringstream v2(read_first_line("/sys/fs/cgroup/cpu.max"));
  std::string quota, period;
  if (v2 >> quota >> period && quota != "max") return std::stod(quota) / std::stod(period);
  const std::string q = read_first_line("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  const std::string p = read_first_line("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  if (!q.empty() && !p.empty() && std::stol(q) > 0) return std::stod(q) / std::stod(p);
  return std::nullopt;
}

std::optional<std::uint64_t> cgroup_memory() {
  const std::string v2 = read_first_line("/sys/fs/cgroup/memory.max");
  if (!v2.empty() && v2 != "max") return std::stoull(v2);
  const std::string v1 = read_first_line("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  // v1 reports "no limit" as a huge page-rounded number.
  if (!v1.empty() && std::stoull(v1) < (1ull << 60)) return std::stoull(v1);
  return std::nullopt;
}

}  // namespace

CpuInfo query_cpu() {
  CpuInfo cpu;
  std::ifstream in("/proc/cpuinfo");
  std::string line, physical_id;
  std::set<std::string> cores;
  std::string flags;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    const std::string value = trim(line.substr(colon + 1));
    if (key == "processor") ++cpu.logical_cores;
    if (key == "model name" && cpu.model.empty()) cpu.model = value;
    if (key == "physical id") physical_id = value;
    if (key == "core id") cores.insert(physical_id + ":" + value);
    if (key == "flags" && flags.empty()) flags = " " + value + " ";
  }
  cpu.physical_cores = cores.empty() ? cpu.logical_cores : static_cast<int>(cores.size());
  for (const char* feature :
       {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"}) {
    if (flags.find(std::string(" ") + feature + " ") != std::string::npos) cpu.simd.emplace_back(feature);
  }
  if (cpu.logical_cores == 0) cpu.logical_cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  cpu.cgroup_cpu_limit = cgroup_cpus();
  return cpu;
}

int usable_cpus() {
  cpu_set_t set;
  int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
  if (cpus <= 0) cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  if (const auto quota = cgroup_cpus()) cpus = std::min(cpus, static_cast<int>(std::ceil(*quota)));
  if (const char* env = std::getenv("ACCEL_NUM_THREADS"); env && *env) {
    char* end = nullptr;
    const long wanted = std::strtol(env, &end, 10);
    if (*end == 0 && wanted > 0) cpus = std::min<long>(cpus, wanted);
  }
  return std::max(cpus, 1);
}

MemoryInfo query_memory() {
  MemoryInfo memory;
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemTotal:") memory.total = kib * 1024;
    if (key == "MemAvailable:") memory.available = kib * 1024;
  }
  memory.used = memory.total > memory.available ? memory.total - memory.available : 0;
  memory.cgroup_limit = cgroup_memory();
  return memory;
}

DiskInfo query_disk(const std::string& path) {
  DiskInfo disk;
  disk.path = path;
  struct statvfs fs {};
  if (statvfs(path.c_str(), &fs) == 0) {
    disk.total = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
    disk.free = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
    disk.used = disk.total - static_cast<std::uint64_t>(fs.f_bfree) * fs.f_frsize;
  }
  return disk;
}

}  // namespace accel::hw
