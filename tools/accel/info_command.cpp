// accel info: the seed's "Checking Your GPU" and "CUDA and cuDNN" answers in one report, plus
// TPU, CPU, RAM and disk; --json for scripts (schema accel.info/1, docs/hardware.md).
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "accel/backends/xla/pjrt_report.h"
#include "accel/hw/snapshot.h"
#include "commands.h"
#include "format.h"

namespace accel::cli {
namespace {

std::string line(const std::string& label, const std::string& value) {
  std::string padded = label + ":";
  padded.resize(16, ' ');
  return padded + value + "\n";
}

std::string library_text(const hw::LibraryVersion& v, const std::string& absent_name) {
  if (!v.found) return "not found (" + absent_name + ")";
  std::string out = v.version.empty() ? "found" : v.version;
  if (v.source == "build headers") out += " (headers accel was built with)";
  return out + (v.path.empty() ? "" : ", " + v.path);
}

// XLA devices through PJRT: the plugin `accel train --device xla` would load, and what it offers.
std::string pjrt_lines(const xla::PjrtReport& p) {
  if (!p.found) return line("XLA (PJRT)", "none: " + p.error);
  if (!p.loaded && p.error.empty()) {
    return line("XLA (PJRT)", "plugin " + p.plugin_path + " (" + p.found_by +
                                  "); accel info --xla loads it for its platform, devices and versions");
  }
  if (!p.usable) return line("XLA (PJRT)", "plugin " + p.plugin_path + " does not work: " + p.error);
  std::string out = line("XLA (PJRT)", p.platform + " plugin, " + std::to_string(p.devices.size()) +
                                           " device(s) (--device " + (p.platform == "tpu" ? "tpu" : "xla") + ")");
  out += line("PJRT plugin", p.plugin_path + " (" + p.found_by + ")");
  out += line("PJRT versions", "C API " + p.api_version + " (accel built with " + p.built_api_version + ")" +
                                   (p.xla_version.empty() ? "" : ", XLA " + p.xla_version) +
                                   (p.stablehlo_version.empty() ? "" : ", StableHLO " + p.stablehlo_version));
  for (const auto& d : p.devices)
    out += line("XLA device " + std::to_string(d.id), d.kind + " (" + d.description + ")");
  return out;
}

nlohmann::json pjrt_json(const xla::PjrtReport& p) {
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& d : p.devices) devices.push_back({{"id", d.id}, {"kind", d.kind}, {"description", d.description}});
  const auto or_null = [](const std::string& v) { return v.empty() ? nlohmann::json() : nlohmann::json(v); };
  return {{"found", p.found},
          {"loaded", p.loaded},
          {"usable", p.usable},
          {"error", or_null(p.error)},
          {"plugin", or_null(p.plugin_path)},
          {"found_by", or_null(p.found_by)},
          {"api_version", or_null(p.api_version)},
          {"built_api_version", or_null(p.built_api_version)},
          {"xla_version", or_null(p.xla_version)},
          {"stablehlo_version", or_null(p.stablehlo_version)},
          {"platform", or_null(p.platform)},
          {"platform_version", or_null(p.platform_version)},
          {"devices", devices}};
}

std::string report(const hw::HardwareSnapshot& s, const xla::PjrtReport& pjrt) {
  std::string out = "accel info\n";
  const bool gpu = !s.cuda.devices.empty();
  out += line("GPU available",
              gpu ? "yes (" + std::to_string(s.cuda.devices.size()) + " CUDA device(s))" : "no (" + s.cuda.error + ")");
  if (s.gpus.available) {
    for (const hw::GpuInfo& g : s.gpus.gpus) {
      out += line("GPU " + std::to_string(g.index),
                  g.name + (g.catalog_name.empty() ? "" : " [" + g.catalog_name + "]") + ", " + gib(g.memory_total) +
                      " total, " + gib(g.memory_used) + " used, " + or_na(g.utilization_gpu, "%") + " busy");
    }
    if (s.gpus.gpus.empty()) out += line("NVIDIA GPUs", "none (the driver reports 0 devices)");
    out += line("Driver", s.gpus.driver_version + " (supports CUDA " + s.gpus.cuda_driver_version + ")");
  } else {
    out += line("NVIDIA GPUs", "none: " + s.gpus.error);
  }
  for (std::size_t i = 0; i < s.cuda.devices.size(); ++i) {
    const auto& d = s.cuda.devices[i];
    out += line("CUDA device " + std::to_string(i), d.name + ", " + gib(d.total_memory) + ", compute capability " +
                                                        std::to_string(d.major) + "." + std::to_string(d.minor) + ", " +
                                                        std::to_string(d.multi_processor_count) + " SMs");
  }
  out +=
      line("CUDA runtime", s.cuda.built_with_cuda ? s.cuda.runtime_version + " (built in)" : "none (CPU-only build)");
  out += line("CUDA driver", s.cuda.driver_version.empty() ? "none" : s.cuda.driver_version);
  out += line("cuDNN", library_text(s.libraries.cudnn, "libcudnn.so.9"));
  out += line("cuDNN enabled", s.cuda.built_with_cuda && s.libraries.cudnn.found ? "yes" : "no");
  out += line("cuBLAS", library_text(s.libraries.cublas, "libcublasLt.so"));
  out += line("NCCL", library_text(s.libraries.nccl, "libnccl.so.2"));
  if (s.tpu.present()) {
    std::string tpu =
        s.tpu.address.empty() ? "devices found" : s.tpu.address + " (from " + s.tpu.address_variable + ")";
    tpu += ", " + std::to_string(s.tpu.devices.size()) + " device file(s), libtpu " +
           (s.tpu.libtpu_path.empty() ? "not found" : s.tpu.libtpu_path);
    out += line("TPU", tpu);
  } else {
    out += line("TPU", "no TPU (no ACCEL_TPU_ADDR/COLAB_TPU_ADDR/TPU_NAME, no /dev/accel* or /dev/vfio devices" +
                           std::string(s.tpu.libtpu_path.empty() ? ")" : "; libtpu at " + s.tpu.libtpu_path + ")"));
  }
  out += pjrt_lines(pjrt);
  std::string simd;
  for (const std::string& f : s.cpu.simd) simd += (simd.empty() ? "" : " ") + f;
  out += line("CPU", s.cpu.model + ", " + std::to_string(s.cpu.physical_cores) + " cores (" +
                         std::to_string(s.cpu.logical_cores) + " logical)" +
                         (s.cpu.cgroup_cpu_limit ? ", cgroup limit " + std::to_string(*s.cpu.cgroup_cpu_limit) : ""));
  out += line("CPU features", simd.empty() ? "none detected" : simd);
  out += line("RAM", gib(s.memory.used) + " used of " + gib(s.memory.total) + " (" + gib(s.memory.available) +
                         " available" + (s.memory.cgroup_limit ? ", cgroup limit " + gib(*s.memory.cgroup_limit) : "") +
                         ")");
  out += line("Disk", gib(s.disk.used) + " used of " + gib(s.disk.total) + " (" + gib(s.disk.free) + " free) at " +
                          s.disk.path);
  return out;
}

}  // namespace

void add_info_command(CLI::App& app, int& exit_code) {
  auto json = std::make_shared<bool>(false);
  auto xla = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("info", "GPU, CUDA, cuDNN, TPU, CPU, RAM and disk of this machine in one report");
  cmd->add_flag("--json", *json, "The report as JSON (schema accel.info/1, docs/hardware.md)");
  cmd->add_flag("--xla", *xla,
                "Load the XLA PJRT plugin (ACCEL_PJRT_PLUGIN, libtpu or PyPI's xla-cpu-pjrt) and report its platform, "
                "devices and versions (50-400 ms; without it the report only names the plugin)");
  cmd->callback([json, xla, &exit_code] {
    const hw::HardwareSnapshot s = hw::snapshot();
    const xla::PjrtReport pjrt = xla::query_pjrt("", *xla);
    std::string out;
    if (*json) {
      nlohmann::json info = nlohmann::json::parse(hw::info_json(s));
      info["pjrt"] = pjrt_json(pjrt);
      out = info.dump(2) + "\n";
    } else {
      out = report(s, pjrt);
    }
    std::fputs(out.c_str(), stdout);
    exit_code = 0;
  });
}

}  // namespace accel::cli
