#include "accel/runtime/service_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

#include "accel/core/error.h"
#include "accel/hw/catalog.h"

namespace accel::runtime {

ServiceConfig ServiceConfig::defaults() {
  ServiceConfig c;
  // Seed: Free ~12 h sessions and 90 min idle, T4, standard priority (preemptible); Pro/Pro+
  // ~24 h, more GPU models, higher priority; background execution for paid tiers (Pro+ up).
  c.tiers["free"] = {"free", {"cpu", "t4", "v2-8"}, 1, 1, 12 * 3600, 90 * 60, 0, true, false, 1.0, {}, {}};
  c.tiers["pro"] = {
      "pro", {"cpu", "t4", "v100", "l4", "v2-8", "v3-8"}, 2, 1, 24 * 3600, 90 * 60, 1, true, false, 1.0, {}, {}};
  c.tiers["pro_plus"] = {"pro_plus", {"cpu", "t4", "v100", "l4", "a100", "a100-80gb", "v2-8", "v3-8", "v5e"},
                         3,          2,
                         24 * 3600,  90 * 60,
                         2,          false,
                         true,       1.0,
                         {},         {}};
  c.tiers["enterprise"] = {
      "enterprise",
      {"cpu", "t4", "v100", "v100-32gb", "l4", "a100", "a100-80gb", "h100", "h200", "v2-8", "v3-8", "v5e"},
      8,
      8,
      7 * 24 * 3600,
      24 * 3600,
      3,
      false,
      true,
      1.0,
      {},
      {}};
  // Colab's machines by tier: ~12.7 GB of RAM on Free, ~25 GB (High-RAM) on Pro, ~51 GB on
  // Pro+; paid tiers' jobs get the CPU first when the host is busy.
  c.tiers["free"].limits = {12.7, 4096, 100, 10};
  c.tiers["pro"].limits = {25.5, 8192, 200, 5};
  c.tiers["pro_plus"].limits = {51.0, 16384, 400, 0};
  c.tiers["enterprise"].limits = {0, 65536, 0, 0};
  // Colab's machines: 2 vCPUs on Free, more on paid tiers; a runtime's processes share these.
  c.tiers["free"].runtime_limits = {12.7, 1024, 2};
  c.tiers["pro"].runtime_limits = {25.5, 2048, 4};
  c.tiers["pro_plus"].runtime_limits = {51.0, 4096, 8};
  c.tiers["enterprise"].runtime_limits = {0, 16384, 0};
  return c;
}

namespace {

// "executor": {"kind": "local"} or {"kind": "slurm", "account", "types", "tiers", ...}
void load_executor(ServiceConfig& c, const nlohmann::json& e, const std::string& path) {
  const std::string where = "service config " + path + ": executor";
  if (!e.is_object())
    throw ValueError(where + " must be an object: {\"kind\": \"local\"} or {\"kind\": \"slurm\", ...}");
  c.executor = e.value("kind", std::string("local"));
  if (c.executor == "local") return;
  if (c.executor != "slurm") throw ValueError(where + ": kind '" + c.executor + "' is not local or slurm");
  SlurmConfig& s = c.slurm;
  s.bin_dir = e.value("bin_dir", s.bin_dir);
  s.account = e.value("account", s.account);
  s.request_limits = e.value("request_limits", s.request_limits);
  s.poll_s = e.value("poll_s", s.poll_s);
  s.status_s = e.value("status_s", s.status_s);
  s.command_timeout_s = e.value("command_timeout_s", s.command_timeout_s);
  if (s.poll_s < 0.01 || s.poll_s > 60 || s.status_s < 0.1 || s.status_s > 600 || s.command_timeout_s < 1 ||
      s.command_timeout_s > 600)
    throw ValueError(where + ": poll_s must be 0.01..60, status_s 0.1..600 and command_timeout_s 1..600");
  if (!e.contains("types") || !e["types"].is_object() || e["types"].empty()) {
    throw ValueError(where +
                     ": \"types\" must map each runtime type to offer to its partition and gres, e.g. "
                     "{\"cpu\": {}, \"t4\": {\"gres\": \"gpu:t4:1\"}}");
  }
  for (const auto& [type, m] : e["types"].items()) {
    if (type != "cpu" && (!hw::find_catalog_type(type) || std::string(hw::find_catalog_type(type)->kind) != "gpu"))
      throw ValueError(where + ": types names '" + type +
                       "', which is not cpu or a GPU type of the catalog (t4, a100, ...)");
    SlurmTypeMapping mapping{m.value("partition", std::string()), m.value("gres", std::string()),
                             m.value("simulated", false)};
    if (type != "cpu" && mapping.gres.empty())
      throw ValueError(where + ": types " + type + " needs a gres (\"gpu:" + type + ":1\"), or Slurm gives it no GPU");
    s.types[type] = mapping;
  }
  if (e.contains("tiers")) {
    for (const auto& [tier, m] : e["tiers"].items()) {
      if (!c.tiers.count(tier))
        throw ValueError(where + ": tiers names '" + tier + "', which is not a tier of this service");
      s.tiers[tier] = {m.value("qos", std::string()), m.value("partition", std::string()), m.value("requeue", true)};
    }
  }
  s.warm_max_age_s = e.value("warm_max_age_s", s.warm_max_age_s);
  if (s.warm_max_age_s < 10 || s.warm_max_age_s > 86400) throw ValueError(where + ": warm_max_age_s must be 10..86400");
  if (!e.contains("warm")) return;
  if (!e["warm"].is_array())
    throw ValueError(where + ": \"warm\" must be a list like [{\"tier\": \"pro\", \"type\": \"t4\", \"count\": 1}]");
  for (const auto& w : e["warm"]) {
    SlurmWarmPool pool{w.value("tier", std::string()), w.value("type", std::string()), w.value("count", 1)};
    const std::string named = "warm pool {tier " + pool.tier + ", type " + pool.type + "}";
    if (!c.tiers.count(pool.tier)) throw ValueError(where + ": " + named + " names no tier of this service");
    if (!s.types.count(pool.type)) throw ValueError(where + ": " + named + " names a type that \"types\" does not map");
    const auto& allowed = c.tiers.at(pool.tier).accelerator_types;
    if (std::find(allowed.begin(), allowed.end(), pool.type) == allowed.end())
      throw ValueError(where + ": " + named + ": tier " + pool.tier + " does not offer type " + pool.type +
                       ", so no runtime could take these allocations");
    if (pool.count < 1 || pool.count > 64) throw ValueError(where + ": " + named + ": count must be 1..64");
    for (const SlurmWarmPool& other : s.warm)
      if (other.tier == pool.tier && other.type == pool.type)
        throw ValueError(where + ": " + named + " is listed twice");
    s.warm.push_back(pool);
  }
}

}  // namespace

ServiceConfig ServiceConfig::load(const std::string& path) {
  ServiceConfig c = defaults();
  std::ifstream in(path);
  if (!in) throw ValueError("service config " + path + ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ValueError("service config " + path + ": not valid JSON (" + e.what() + ")");
  }
  try {
    if (j.contains("tiers")) {
      for (const auto& [name, t] : j["tiers"].items()) {
        TierPolicy tier = c.tiers.count(name) ? c.tiers[name] : TierPolicy{};
        tier.name = name;
        if (t.contains("accelerator_types"))
          tier.accelerator_types = t["accelerator_types"].get<std::vector<std::string>>();
        tier.max_runtimes = t.value("max_runtimes", tier.max_runtimes);
        tier.max_accelerated = t.value("max_accelerated", tier.max_accelerated);
        tier.max_lifetime_s = t.value("max_lifetime_s", tier.max_lifetime_s);
        tier.idle_timeout_s = t.value("idle_timeout_s", tier.idle_timeout_s);
        tier.priority = t.value("priority", tier.priority);
        tier.preemptible = t.value("preemptible", tier.preemptible);
        tier.background_execution = t.value("background_execution", tier.background_execution);
        tier.memory_fraction = t.value("memory_fraction", tier.memory_fraction);
        if (t.contains("limits")) {
          const auto& l = t["limits"];
          tier.limits.ram_gb = l.value("ram_gb", tier.limits.ram_gb);
          tier.limits.open_files = l.value("open_files", tier.limits.open_files);
          tier.limits.file_size_gb = l.value("file_size_gb", tier.limits.file_size_gb);
          tier.limits.nice = l.value("nice", tier.limits.nice);
          if (tier.limits.ram_gb < 0 || tier.limits.open_files < 0 || tier.limits.file_size_gb < 0 ||
              tier.limits.nice < 0 || tier.limits.nice > 19) {
            throw ValueError("service config " + path + ": tier " + name +
                             " limits: ram_gb, open_files and file_size_gb must be >= 0 (0 = no limit), nice 0..19");
          }
        }
        if (t.contains("runtime_limits")) {
          const auto& l = t["runtime_limits"];
          tier.runtime_limits.memory_gb = l.value("memory_gb", tier.runtime_limits.memory_gb);
          tier.runtime_limits.max_processes = l.value("max_processes", tier.runtime_limits.max_processes);
          tier.runtime_limits.cpus = l.value("cpus", tier.runtime_limits.cpus);
          if (tier.runtime_limits.memory_gb < 0 || tier.runtime_limits.max_processes < 0 ||
              tier.runtime_limits.cpus < 0) {
            throw ValueError("service config " + path + ": tier " + name +
                             " runtime_limits: memory_gb, max_processes and cpus must be >= 0 (0 = no limit)");
          }
        }
        for (const std::string& type : tier.accelerator_types) {
          if (type != "cpu" && !hw::find_catalog_type(type)) {
            throw ValueError("service config " + path + ": tier " + name + " names unknown accelerator type '" + type +
                             "'");
          }
        }
        c.tiers[name] = tier;
      }
    }
    if (j.contains("simulated_devices")) {
      c.simulated.clear();
      for (const auto& d : j["simulated_devices"]) {
        SimulatedDevices s{d.at("type").get<std::string>(), d.value("count", 1)};
        if (!hw::find_catalog_type(s.type)) {
          throw ValueError("service config " + path + ": simulated device type '" + s.type + "' is not in the catalog");
        }
        c.simulated.push_back(s);
      }
    }
    if (j.contains("xla_devices")) {
      c.xla_devices.clear();
      for (const auto& d : j["xla_devices"]) {
        XlaDevices x{d.at("type").get<std::string>(), d.value("plugin", std::string("tpu")), d.value("count", 1)};
        const hw::AcceleratorSpec* spec = hw::find_catalog_type(x.type);
        if (!spec || std::string(spec->kind) != "tpu") {
          throw ValueError("service config " + path + ": xla_devices type '" + x.type +
                           "' is not a TPU type of the catalog (v2-8, v3-8, v5e)");
        }
        if (x.plugin.empty() || x.count < 1 || x.count > 64) {
          throw ValueError("service config " + path + ": xla_devices " + x.type +
                           ": plugin must name a PJRT plugin (tpu, cpu or a path) and count be 1..64");
        }
        for (const XlaDevices& earlier : c.xla_devices) {
          if (earlier.type == x.type) {
            throw ValueError("service config " + path + ": xla_devices names " + x.type +
                             " twice: give one entry a count instead");
          }
        }
        c.xla_devices.push_back(x);
      }
      // libtpu lets one process hold the machine's TPU: a second lease of it would fail.
      int libtpu = 0;
      for (const XlaDevices& x : c.xla_devices)
        libtpu += x.plugin == "tpu" || x.plugin.find("libtpu") != std::string::npos ? x.count : 0;
      if (libtpu > 1) {
        throw ValueError("service config " + path + ": xla_devices offer libtpu " + std::to_string(libtpu) +
                         " times; one process holds a machine's TPU, so offer it once (count 1)");
      }
    }
    c.discover_gpus = j.value("discover_gpus", c.discover_gpus);
    c.tick_s = j.value("tick_s", c.tick_s);
    c.preemption_grace_s = j.value("preemption_grace_s", c.preemption_grace_s);
    c.warning_lead_s = j.value("warning_lead_s", c.warning_lead_s);
    c.delete_grace_s = j.value("delete_grace_s", c.delete_grace_s);
    if (c.preemption_grace_s < 0 || c.delete_grace_s < 0 || c.delete_grace_s > 3600) {
      throw ValueError("service config " + path +
                       ": preemption_grace_s and delete_grace_s must be >= 0 (delete_grace_s at most 3600)");
    }
    if (j.contains("worker_user")) {
      throw ValueError("service config " + path +
                       ": worker_user is gone; each user's jobs run as a uid of their own (set tenant_uid_first and "
                       "tenant_uid_count to choose the range, docs/runtime.md)");
    }
    c.tenant_uid_first = j.value("tenant_uid_first", c.tenant_uid_first);
    c.tenant_uid_count = j.value("tenant_uid_count", c.tenant_uid_count);
    if (c.tenant_uid_first < 1000 || c.tenant_uid_count < 1 || c.tenant_uid_first + c.tenant_uid_count > 2147483647) {
      throw ValueError("service config " + path + ": tenant uids " + std::to_string(c.tenant_uid_first) + " + " +
                       std::to_string(c.tenant_uid_count) +
                       " must lie between 1000 and 2^31-1 (system and login users live below 1000)");
    }
    c.allow_unisolated = j.value("allow_unisolated", c.allow_unisolated);
    c.use_cgroups = j.value("use_cgroups", c.use_cgroups);
    c.database_reserve_mb = j.value("database_reserve_mb", c.database_reserve_mb);
    if (c.database_reserve_mb < 0 || c.database_reserve_mb > 1e6) {
      throw ValueError("service config " + path + ": database_reserve_mb must be from 0 to 1e6");
    }
    c.max_queue = j.value("max_queue", c.max_queue);
    c.max_connections_per_address = j.value("max_connections_per_address", c.max_connections_per_address);
    if (c.max_connections_per_address < 1)
      throw ValueError("service config " + path + ": max_connections_per_address must be at least 1");
    c.keep_terminated_s = j.value("keep_terminated_s", c.keep_terminated_s);
    if (j.contains("executor")) load_executor(c, j["executor"], path);
  } catch (const nlohmann::json::exception& e) {
    throw ValueError("service config " + path + ": " + e.what());
  }
  return c;
}

}  // namespace accel::runtime
