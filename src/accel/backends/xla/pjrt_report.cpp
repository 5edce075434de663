#include "accel/backends/xla/pjrt_report.h"

namespace accel::xla {

PjrtReport query_pjrt(const std::string& spec, bool load) {
  PjrtReport report;
  report.built_api_version = built_with_pjrt() ? built_api_version().to_string() : "";
  try {
    const PluginLocation location = find_plugin(spec);
    report.plugin_path = location.path;
    report.found_by = location.found_by;
    report.found = true;
    if (!load) return report;
    const auto client = shared_client(location.path);
    const Plugin& plugin = client->plugin();
    report.loaded = true;
    report.api_version = plugin.api_version().to_string();
    const auto attribute = [&](const char* name) {
      const auto it = plugin.attributes().find(name);
      return it == plugin.attributes().end() ? std::string() : it->second;
    };
    report.xla_version = attribute("xla_version");
    report.stablehlo_version = attribute("stablehlo_current_version");
    report.platform = client->platform_name();
    report.platform_version = client->platform_version();
    report.devices = client->devices();
    report.usable = true;
  } catch (const Error& e) {
    report.error = e.what();
  }
  return report;
}

}  // namespace accel::xla
