#include "accel/hw/snapshot.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace accel::hw {
namespace {

using json = nlohmann::ordered_json;  // keys in the documented order

template <typename T>
json or_null(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

json text_or_null(const std::string& value) { return value.empty() ? json(nullptr) : json(value); }

json gpu_json(const GpuInfo& g) {
  json out = {
      {"index", g.index},
      {"name", g.name},
      {"catalog", text_or_null(g.catalog_name)},
      {"uuid", g.uuid},
      {"pci_bus_id", g.pci_bus_id},
      {"memory",
       {{"total", g.memory_total}, {"used", g.memory_used}, {"free", g.memory_free}, {"reserved", g.memory_reserved}}},
      {"clocks_mhz",
       {{"sm", or_null(g.clock_sm_mhz)},
        {"memory", or_null(g.clock_memory_mhz)},
        {"graphics", or_null(g.clock_graphics_mhz)},
        {"max_sm", or_null(g.max_clock_sm_mhz)},
        {"max_memory", or_null(g.max_clock_memory_mhz)},
        {"max_graphics", or_null(g.max_clock_graphics_mhz)}}},
      {"utilization", {{"gpu", or_null(g.utilization_gpu)}, {"memory", or_null(g.utilization_memory)}}},
      {"temperature_c", or_null(g.temperature_c)},
      {"power", {{"draw_w", or_null(g.power_draw_w)}, {"limit_w", or_null(g.power_limit_w)}}},
      {"pstate",
       g.performance_state ? json(std::string("P").append(std::to_string(*g.performance_state))) : json(nullptr)},
      {"compute_mode", or_null(g.compute_mode)},
      {"mig_enabled", or_null(g.mig_enabled)},
      {"ecc_uncorrected", or_null(g.ecc_uncorrected)}};
  out["compute_capability"] =
      g.compute_capability_major
          ? json(std::to_string(*g.compute_capability_major) + "." + std::to_string(*g.compute_capability_minor))
          : json(nullptr);
  return out;
}

json processes_json(const GpuReport& r) {
  json out = json::array();
  for (const GpuProcess& p : r.processes) {
    out.push_back({{"gpu", p.gpu_index}, {"pid", p.pid}, {"name", p.name}, {"used_memory", or_null(p.used_memory)}});
  }
  return out;
}

json nvml_json(const GpuReport& r) {
  return {{"available", r.available},
          {"library", r.library},
          {"error", text_or_null(r.error)},
          {"driver_version", text_or_null(r.driver_version)},
          {"cuda_driver_version", text_or_null(r.cuda_driver_version)},
          {"warnings", r.warnings}};
}

json library_json(const LibraryVersion& v) {
  return {{"found", v.found},
          {"version", text_or_null(v.version)},
          {"path", text_or_null(v.path)},
          {"version_source", text_or_null(v.source)}};
}

json gpus_json(const GpuReport& r) {
  json out = json::array();
  for (const GpuInfo& g : r.gpus) out.push_back(gpu_json(g));
  return out;
}

}  // namespace

HardwareSnapshot snapshot() {
  HardwareSnapshot s;
  s.cpu = query_cpu();
  s.memory = query_memory();
  // statvfs(".") rather than the absolute path: a runtime's job may sit in a folder whose
  // parents it cannot search (a worker dropped to nobody under a private data folder).
  s.disk = query_disk(".");
  s.disk.path = std::filesystem::current_path().string();
  s.gpus = query_gpus();
  s.cuda = query_cuda_runtime();
  s.libraries = query_library_versions();
  s.tpu = query_tpu();
  return s;
}

std::string info_json(const HardwareSnapshot& s) {
  json cuda_devices = json::array();
  for (const CudaDeviceProperties& d : s.cuda.devices) {
    cuda_devices.push_back({{"name", d.name},
                            {"total_memory", d.total_memory},
                            {"major", d.major},
                            {"minor", d.minor},
                            {"multi_processor_count", d.multi_processor_count}});
  }
  const bool cudnn_usable = s.cuda.built_with_cuda && s.libraries.cudnn.found;
  json out = {{"schema", "accel.info/1"},
              {"gpu_available", !s.cuda.devices.empty()},
              {"cuda",
               {{"built_with_cuda", s.cuda.built_with_cuda},
                {"runtime_version", text_or_null(s.cuda.runtime_version)},
                {"driver_version", text_or_null(s.cuda.driver_version)},
                {"device_count", s.cuda.devices.size()},
                {"devices", cuda_devices},
                {"error", text_or_null(s.cuda.error)}}},
              {"cudnn", library_json(s.libraries.cudnn)},
              {"nccl", library_json(s.libraries.nccl)},
              {"cublas", library_json(s.libraries.cublas)},
              {"nvml", nvml_json(s.gpus)},
              {"gpus", gpus_json(s.gpus)},
              {"processes", processes_json(s.gpus)},
              {"tpu",
               {{"present", s.tpu.present()},
                {"address", text_or_null(s.tpu.address)},
                {"address_variable", text_or_null(s.tpu.address_variable)},
                {"devices", s.tpu.devices},
                {"libtpu", text_or_null(s.tpu.libtpu_path)}}},
              {"cpu",
               {{"model", s.cpu.model},
                {"logical_cores", s.cpu.logical_cores},
                {"physical_cores", s.cpu.physical_cores},
                {"simd", s.cpu.simd},
                {"cgroup_cpu_limit", or_null(s.cpu.cgroup_cpu_limit)}}},
              {"ram",
               {{"total", s.memory.total},
                {"used", s.memory.used},
                {"available", s.memory.available},
                {"cgroup_limit", or_null(s.memory.cgroup_limit)}}},
              {"disk", {{"path", s.disk.path}, {"total", s.disk.total}, {"used", s.disk.used}, {"free", s.disk.free}}}};
  out["cudnn"]["enabled"] = cudnn_usable;
  return out.dump(2);
}

std::string smi_json(const GpuReport& gpus) {
  const json out = {{"schema", "accel.smi/1"},
                    {"nvml", nvml_json(gpus)},
                    {"gpus", gpus_json(gpus)},
                    {"processes", processes_json(gpus)}};
  return out.dump(2);
}

}  // namespace accel::hw
