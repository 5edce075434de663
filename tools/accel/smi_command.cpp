// accel smi: nvidia-smi's familiar views from NVML: the table, --query-gpu CSV, --json, -l.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "accel/core/error.h"
#include "accel/hw/host_info.h"
#include "accel/hw/snapshot.h"
#include "accel/memory/usage_publisher.h"  // read_published_usage: accel processes
#include "commands.h"
#include "format.h"

namespace accel::cli {
namespace {

using hw::GpuInfo;
using hw::GpuReport;

// One --query-gpu field: its name, the unit nvidia-smi puts in the header and after values,
// and how to read it ("" for N/A).
struct QueryField {
  const char* name;
  const char* unit;
  std::function<std::string(const GpuReport&, const GpuInfo&)> value;
};

template <typename T>
std::string opt(const std::optional<T>& v) {
  return v ? std::to_string(*v) : "";
}

std::string watts(const std::optional<double>& w) {
  if (!w) return "";
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", *w);
  return text;
}

const std::vector<QueryField>& query_fields() {
  static const std::vector<QueryField> fields = {
      {"index", "", [](const GpuReport&, const GpuInfo& g) { return std::to_string(g.index); }},
      {"name", "", [](const GpuReport&, const GpuInfo& g) { return g.name; }},
      {"uuid", "", [](const GpuReport&, const GpuInfo& g) { return g.uuid; }},
      {"pci.bus_id", "", [](const GpuReport&, const GpuInfo& g) { return g.pci_bus_id; }},
      {"driver_version", "", [](const GpuReport& r, const GpuInfo&) { return r.driver_version; }},
      {"memory.total", "MiB", [](const GpuReport&, const GpuInfo& g) { return std::to_string(mib(g.memory_total)); }},
      {"memory.used", "MiB", [](const GpuReport&, const GpuInfo& g) { return std::to_string(mib(g.memory_used)); }},
      {"memory.free", "MiB", [](const GpuReport&, const GpuInfo& g) { return std::to_string(mib(g.memory_free)); }},
      {"memory.reserved", "MiB",
       [](const GpuReport&, const GpuInfo& g) { return std::to_string(mib(g.memory_reserved)); }},
      {"clocks.current.sm", "MHz", [](const GpuReport&, const GpuInfo& g) { return opt(g.clock_sm_mhz); }},
      {"clocks.current.memory", "MHz", [](const GpuReport&, const GpuInfo& g) { return opt(g.clock_memory_mhz); }},
      {"clocks.current.graphics", "MHz", [](const GpuReport&, const GpuInfo& g) { return opt(g.clock_graphics_mhz); }},
      {"clocks.max.sm", "MHz", [](const GpuReport&, const GpuInfo& g) { return opt(g.max_clock_sm_mhz); }},
      {"clocks.max.memory", "MHz", [](const GpuReport&, const GpuInfo& g) { return opt(g.max_clock_memory_mhz); }},
      {"clocks.max.graphics", "MHz", [](const GpuReport&, const GpuInfo& g) { return opt(g.max_clock_graphics_mhz); }},
      {"utilization.gpu", "%", [](const GpuReport&, const GpuInfo& g) { return opt(g.utilization_gpu); }},
      {"utilization.memory", "%", [](const GpuReport&, const GpuInfo& g) { return opt(g.utilization_memory); }},
      {"temperature.gpu", "", [](const GpuReport&, const GpuInfo& g) { return opt(g.temperature_c); }},
      {"power.draw", "W", [](const GpuReport&, const GpuInfo& g) { return watts(g.power_draw_w); }},
      {"power.limit", "W", [](const GpuReport&, const GpuInfo& g) { return watts(g.power_limit_w); }},
      {"pstate", "",
       [](const GpuReport&, const GpuInfo& g) {
         return g.performance_state ? "P" + std::to_string(*g.performance_state) : std::string();
       }},
      {"compute_mode", "", [](const GpuReport&, const GpuInfo& g) { return g.compute_mode.value_or(""); }},
      {"mig.mode.current", "",
       [](const GpuReport&, const GpuInfo& g) {
         return g.mig_enabled ? std::string(*g.mig_enabled ? "Enabled" : "Disabled") : std::string();
       }},
      {"ecc.errors.uncorrected.aggregate.total", "",
       [](const GpuReport&, const GpuInfo& g) { return opt(g.ecc_uncorrected); }},
      {"compute_cap", "",
       [](const GpuReport&, const GpuInfo& g) {
         return g.compute_capability_major
                    ? std::to_string(*g.compute_capability_major) + "." + std::to_string(*g.compute_capability_minor)
                    : std::string();
       }},
  };
  return fields;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, sep);) {
    const auto begin = part.find_first_not_of(' ');
    const auto end = part.find_last_not_of(' ');
    if (begin != std::string::npos) parts.push_back(part.substr(begin, end - begin + 1));
  }
  return parts;
}

std::string query_csv(const GpuReport& report, const std::string& fields_arg, const std::string& format) {
  std::vector<const QueryField*> selected;
  // nvidia-smi's short spellings; its header shows the long name, as here.
  static const std::map<std::string, std::string> aliases = {{"clocks.sm", "clocks.current.sm"},
                                                             {"clocks.mem", "clocks.current.memory"},
                                                             {"clocks.gr", "clocks.current.graphics"},
                                                             {"clocks.max.mem", "clocks.max.memory"},
                                                             {"clocks.max.gr", "clocks.max.graphics"},
                                                             {"gpu_name", "name"},
                                                             {"gpu_uuid", "uuid"},
                                                             {"gpu_bus_id", "pci.bus_id"}};
  for (std::string name : split(fields_arg, ',')) {
    if (auto alias = aliases.find(name); alias != aliases.end()) name = alias->second;
    const QueryField* found = nullptr;
    for (const QueryField& f : query_fields()) {
      if (name == f.name) found = &f;
    }
    if (!found) {
      std::string valid;
      for (const QueryField& f : query_fields()) valid += std::string(valid.empty() ? "" : ", ") + f.name;
      throw ValueError("--query-gpu: field \"" + name + "\" is not a valid field to query (valid: " + valid + ")");
    }
    selected.push_back(found);
  }
  if (selected.empty()) throw ValueError("--query-gpu needs at least one field, e.g. --query-gpu=name,memory.total");
  bool header = true, units = true;
  const std::vector<std::string> options = split(format, ',');
  if (options.empty() || options[0] != "csv") {
    throw ValueError("--format: only csv is supported (csv, csv,noheader, csv,nounits, csv,noheader,nounits)");
  }
  for (std::size_t i = 1; i < options.size(); ++i) {
    if (options[i] == "noheader") {
      header = false;
    } else if (options[i] == "nounits") {
      units = false;
    } else {
      throw ValueError("--format: unknown option \"" + options[i] + "\" (noheader, nounits)");
    }
  }
  std::string out;
  if (header) {
    for (std::size_t i = 0; i < selected.size(); ++i) {
      out += (i ? ", " : "") + std::string(selected[i]->name);
      if (units && *selected[i]->unit) out += std::string(" [") + selected[i]->unit + "]";
    }
    out += "\n";
  }
  for (const GpuInfo& gpu : report.gpus) {
    for (std::size_t i = 0; i < selected.size(); ++i) {
      std::string value = selected[i]->value(report, gpu);
      if (value.empty()) {
        value = "[N/A]";
      } else if (units && *selected[i]->unit) {
        value += std::string(" ") + selected[i]->unit;
      }
      out += (i ? ", " : "") + value;
    }
    out += "\n";
  }
  return out;
}

std::string pad(const std::string& text, std::size_t width, bool right = false) {
  std::string t = text.size() > width ? text.substr(0, width) : text;
  const std::string fill(width - t.size(), ' ');
  return right ? fill + t : t + fill;
}

// The table's abbreviations, as nvidia-smi prints them ("E. Process").
std::string short_compute_mode(const std::optional<std::string>& mode) {
  if (!mode) return "N/A";
  if (*mode == "Exclusive_Process") return "E. Process";
  if (*mode == "Exclusive_Thread") return "E. Thread";
  return *mode;
}

std::string table(const GpuReport& report) {
  const std::string rule =
      "+-----------------------------------------+------------------------+----------------------+\n";
  std::string out = "+" + std::string(89, '-') + "+\n";
  out += "| " + pad("ACCEL-SMI", 26) + pad("Driver Version: " + report.driver_version, 34) +
         pad("CUDA Version: " + report.cuda_driver_version, 27) + " |\n";
  out += "|-----------------------------------------+------------------------+----------------------|\n";
  out += "| GPU  Name                  MIG M.       | Bus-Id                 | Volatile Uncorr. ECC |\n";
  out += "| Temp   Perf   Pwr:Usage/Cap             |           Memory-Usage | GPU-Util  Compute M. |\n";
  out += "|=========================================+========================+======================|\n";
  for (const GpuInfo& g : report.gpus) {
    const std::string mig = g.mig_enabled ? (*g.mig_enabled ? "Enabled" : "Disabled") : "N/A";
    out += "| " + pad(std::to_string(g.index), 3, true) + "  " + pad(g.name, 21) + " " + pad(mig, 13) + "| " +
           pad(g.pci_bus_id, 23) + "| " + pad(or_na(g.ecc_uncorrected), 20, true) + " |\n";
    const std::string power = (g.power_draw_w ? std::to_string(static_cast<int>(*g.power_draw_w)) + "W" : "N/A") +
                              " / " +
                              (g.power_limit_w ? std::to_string(static_cast<int>(*g.power_limit_w)) + "W" : "N/A");
    const std::string memory =
        std::to_string(mib(g.memory_used)) + "MiB / " + std::to_string(mib(g.memory_total)) + "MiB";
    out += "| " + pad(or_na(g.temperature_c, "C"), 7) +
           pad(g.performance_state ? "P" + std::to_string(*g.performance_state) : "N/A", 7) + pad(power, 26) + "| " +
           pad(memory, 22, true) + " | " + pad(or_na(g.utilization_gpu, "%"), 8, true) + " " +
           pad(short_compute_mode(g.compute_mode), 11, true) + " |\n";
    if (!g.catalog_name.empty())
      out += "| " + pad("      catalog: " + g.catalog_name, 40) + "|" + std::string(24, ' ') + "|" +
             std::string(22, ' ') + "|\n";
    out += rule;
  }
  out += "\n+" + std::string(89, '-') + "+\n";
  out += "| " + pad("Processes:", 87) + " |\n";
  out += "|  GPU        PID   Process name" + std::string(47, ' ') + "GPU Memory |\n";
  out += "|" + std::string(89, '=') + "|\n";
  if (report.processes.empty()) out += "|  " + pad("No running processes found", 86) + " |\n";
  for (const hw::GpuProcess& p : report.processes) {
    const std::string memory = p.used_memory ? std::to_string(mib(*p.used_memory)) + "MiB" : "N/A";
    out += "|  " + pad(std::to_string(p.gpu_index), 3, true) + "   " + pad(std::to_string(p.pid), 8, true) + "   " +
           pad(p.name, 53) + pad(memory, 16, true) + " |\n";
  }
  out += "+" + std::string(89, '-') + "+\n";
  for (const std::string& w : report.warnings) out += "warning: " + w + "\n";
  return out;
}

// What accel processes' caching allocators hold, next to NVML's view of the same process.
std::string accel_usage_table(const GpuReport& report, const std::vector<memory::PublishedUsage>& usage) {
  if (usage.empty()) return "";
  std::string out = "\n+" + std::string(89, '-') + "+\n";
  out += "| " + pad("accel processes (their caching allocators; NVML counts the CUDA context too)", 87) + " |\n";
  const auto row = [](const std::string& pid, const std::string& device, const std::string& allocated,
                      const std::string& reserved, const std::string& peak, const std::string& peak_reserved,
                      const std::string& nvml) {
    return "| " + pad(pid, 7, true) + "   " + pad(device, 22) + pad(allocated, 10, true) + pad(reserved, 10, true) +
           pad(peak, 11, true) + pad(peak_reserved, 10, true) + pad(nvml, 14, true) + " |\n";
  };
  out += row("PID", "Device", "Allocated", "Reserved", "Peak alloc", "Peak rsv", "NVML used");
  out += "|" + std::string(89, '=') + "|\n";
  const auto mib_text = [](std::int64_t bytes) { return std::to_string(bytes / (1024 * 1024)) + "MiB"; };
  for (const memory::PublishedUsage& u : usage) {
    std::string nvml = u.simulated ? "simulated" : "-";
    for (const hw::GpuProcess& p : report.processes) {
      if (u.device.is_cuda() && static_cast<int>(p.pid) == u.pid && static_cast<int>(p.gpu_index) == u.device.index &&
          p.used_memory) {
        nvml = mib_text(static_cast<std::int64_t>(*p.used_memory));
      }
    }
    out += row(std::to_string(u.pid), u.device.describe(), mib_text(u.allocated), mib_text(u.reserved),
               mib_text(u.peak_allocated), mib_text(u.peak_reserved), nvml);
  }
  out += "+" + std::string(89, '-') + "+\n";
  return out;
}

// hw's smi document plus "accel_processes": the allocator counters accel processes publish.
std::string smi_json_with_accel_usage(const GpuReport& report, const std::vector<memory::PublishedUsage>& usage) {
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(hw::smi_json(report));
  nlohmann::ordered_json processes = nlohmann::ordered_json::array();
  for (const memory::PublishedUsage& u : usage) {
    processes.push_back({{"pid", u.pid},
                         {"device", u.device.to_string()},
                         {"simulated", u.simulated},
                         {"allocated", u.allocated},
                         {"reserved", u.reserved},
                         {"peak_allocated", u.peak_allocated},
                         {"peak_reserved", u.peak_reserved}});
  }
  doc["accel_processes"] = processes;
  return doc.dump(2);
}

std::string no_gpu_text(const GpuReport& report) {
  const hw::CpuInfo cpu = hw::query_cpu();
  const hw::MemoryInfo memory = hw::query_memory();
  std::string out = "No NVIDIA GPU: " + report.error + "\n";
  out += "CPU: " + cpu.model + ", " + std::to_string(cpu.physical_cores) + " cores (" +
         std::to_string(cpu.logical_cores) + " logical); RAM " + gib(memory.used) + " used of " + gib(memory.total) +
         "\n";
  return out;
}

struct SmiOptions {
  std::string query;
  std::string format = "csv";
  bool json = false;
  double loop_seconds = 0;
  int count = 0;
};

int run_smi(const SmiOptions& o) {
  for (int shown = 0;; ++shown) {
    const GpuReport report = hw::query_gpus();
    std::string out;
    if (o.json) {
      out = smi_json_with_accel_usage(report, memory::read_published_usage()) + "\n";
    } else if (!o.query.empty() && report.available) {
      out = query_csv(report, o.query, o.format);
    } else {
      out = report.available ? table(report) : no_gpu_text(report);
      out += accel_usage_table(report, memory::read_published_usage());
    }
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
    if (o.loop_seconds <= 0 || (o.count > 0 && shown + 1 >= o.count)) break;
    std::this_thread::sleep_for(std::chrono::duration<double>(o.loop_seconds));
  }
  return 0;
}

}  // namespace

void add_smi_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<SmiOptions>();
  CLI::App* cmd = app.add_subcommand("smi", "NVIDIA GPUs as nvidia-smi shows them (NVML); says so when there are none");
  cmd->add_option("--query-gpu", o->query, "Comma-separated fields, e.g. name,memory.total,memory.used,driver_version");
  cmd->add_option("--format", o->format, "csv[,noheader][,nounits]")->capture_default_str();
  cmd->add_flag("--json", o->json, "The report as JSON (schema in docs/hardware.md)");
  cmd->add_option("-l,--loop", o->loop_seconds, "Repeat every SECONDS")->check(CLI::PositiveNumber);
  cmd->add_option("--count", o->count, "With -l: stop after this many reports (default: run until interrupted)");
  cmd->callback([o, &exit_code] { exit_code = run_smi(*o); });
}

}  // namespace accel::cli
