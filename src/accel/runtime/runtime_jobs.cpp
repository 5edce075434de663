// Jobs inside runtimes, their output, a runtime's resources, and the Prometheus metrics.
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "accel/hw/catalog.h"
#include "accel/hw/gpu_info.h"
#include "accel/hw/host_info.h"
#include "accel/memory/usage_publisher.h"
#include "accel/runtime/runtime_service.h"

namespace accel::runtime {
namespace fs = std::filesystem;

namespace {

std::uint64_t directory_bytes(const std::string& path) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec)) {
    if (entry.is_regular_file(ec)) total += entry.file_size(ec);
  }
  return total;
}

}  // namespace

Json RuntimeService::run_job(const User& user, const std::string& id, const Json& body) {
  if (!body.is_object() || !body.contains("command") || !body["command"].is_array() || body["command"].empty()) {
    throw ApiError(400, "field 'command' is required: a non-empty array of strings, e.g. [\"nvidia-smi\"]");
  }
  std::vector<std::string> command;
  for (const Json& part : body["command"]) {
    if (!part.is_string()) throw ApiError(400, "field 'command' must hold only strings");
    command.push_back(part);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  Runtime& rt = owned(user, id);
  if (rt.state != "running")
    throw ApiError(409, "runtime " + id + " is " + rt.state + "; jobs run in a running runtime");
  const Job& job = launch_job(rt, command);
  save(rt);
  return to_json(job);
}

Job& RuntimeService::launch_job(Runtime& rt, const std::vector<std::string>& command) {
  ensure_worker(rt);  // the runtime's worker process group starts with its first job
  // Every time, not only with a new worker: a worker adopted from before job files moved to
  // the service's folder has none yet, and the monitor would find nowhere to write.
  fs::create_directories(job_dir(rt));
  Job job;
  job.id = sequential_id("job-");
  job.runtime_id = rt.id;
  job.user = rt.user;
  job.command = command;
  job.state = "running";
  job.started_at = now_seconds();
  const std::string base = job_dir(rt) + "/" + job.id;
  job.handle =
      executor_->start_job(rt.worker, {identity_of(rt.user), rt.workdir, command, lease_environment(rt), base + ".out",
                                       base + ".exit", job_limits(rt), tier_of(rt.tier).runtime_limits});
  Job& stored = jobs_[job.id] = job;
  ++jobs_started_;
  save(stored);
  touch(rt);
  event(rt, "job_started", "job " + job.id + ": " + command.front());
  return stored;
}

Json RuntimeService::job(const User& user, const std::string& id, const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  owned(user, id);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.runtime_id != id) throw ApiError(404, "no job '" + job_id + "' in runtime " + id);
  return to_json(it->second);
}

Json RuntimeService::jobs(const User& user, const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  owned(user, id);
  Json out = Json::array();
  for (const auto& [job_id, job] : jobs_) {  // ids are time-ordered
    if (job.runtime_id == id) out.push_back(to_json(job));
  }
  return out;
}

std::string RuntimeService::job_output(const User& user, const std::string& id, const std::string& job_id,
                                       std::size_t offset, bool& done) {
  std::string path;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Runtime& rt = owned(user, id);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end() || it->second.runtime_id != id)
      throw ApiError(404, "no job '" + job_id + "' in runtime " + id);
    done = it->second.state != "running";
    path = job_dir(rt) + "/" + job_id + ".out";
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(static_cast<std::streamoff>(offset));
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return out;
}

Json RuntimeService::resources(const User& user, const std::string& id) {
  // A copy of what is needed, then the slow part (walking the runtime's files, NVML, /proc)
  // off the lock: a runtime with 200k files made every other user's requests wait seconds.
  std::unique_lock<std::mutex> lock(mutex_);
  const Runtime rt = owned(user, id);
  std::vector<Accelerator> leased;
  for (const Accelerator& a : inventory_)
    if (a.id == rt.accelerator_id) leased.push_back(a);
  const RuntimeLimits limits = tier_of(rt.tier).runtime_limits;
  lock.unlock();
  // The executor's counters for the runtime's processes (its cgroup's, where it has one).
  const Usage usage = rt.state == "running" && !rt.worker.empty() ? executor_->usage(rt.worker) : Usage{};
  const hw::MemoryInfo memory = hw::query_memory();
  struct statvfs disk {};
  statvfs(rt.workdir.empty() ? data_dir_.c_str() : rt.workdir.c_str(), &disk);
  // Colab's resource monitor: RAM, disk, and the accelerator's memory and utilisation.
  Json out = {
      {"runtime", id},
      {"ram",
       {{"used", usage.memory_bytes},
        {"total", memory.total},
        {"host_used", memory.used},
        {"limit", static_cast<std::uint64_t>(limits.memory_gb * 1024 * 1024 * 1024)}}},
      {"processes", {{"count", usage.processes}, {"limit", limits.max_processes}}},
      {"cpu", {{"seconds", usage.cpu_seconds ? Json(*usage.cpu_seconds) : Json(nullptr)}, {"limit", limits.cpus}}},
      {"confinement", executor_->confinement()},
      {"allocation",
       [&usage] {
         if (usage.allocation.empty()) return Json(nullptr);
         Json a = Json::object();
         for (const auto& [key, value] : usage.allocation) a[key] = value;
         return a;
       }()},
      {"disk",
       {{"used", rt.workdir.empty() ? 0 : directory_bytes(rt.workdir)},
        {"total", static_cast<std::uint64_t>(disk.f_blocks) * disk.f_frsize},
        {"free", static_cast<std::uint64_t>(disk.f_bavail) * disk.f_frsize}}},
      {"gpu", nullptr}};
  if (const auto mapped = config_.slurm.types.find(rt.type);
      config_.executor == "slurm" && rt.type != "cpu" && mapped != config_.slurm.types.end()) {
    // The cluster's GPU: its node's NVML is not this machine's; what Slurm says is in "allocation".
    if (const hw::AcceleratorSpec* spec = hw::find_catalog_type(rt.type)) {
      out["gpu"] = {{"name", std::string(spec->name) + (mapped->second.simulated ? " (simulated)" : "")},
                    {"type", rt.type},
                    {"simulated", mapped->second.simulated},
                    {"memory_total", static_cast<std::uint64_t>(spec->memory_gb * 1e9)},
                    {"memory_used", nullptr},
                    {"utilization", nullptr}};
    }
  }
  for (const Accelerator& a : leased) {
    Json gpu = {{"name", a.name},           {"type", a.type},
                {"simulated", a.simulated}, {"memory_total", static_cast<std::uint64_t>(a.memory_gb * 1e9)},
                {"memory_used", 0},         {"utilization", nullptr}};
    if (a.simulated) {
      // What the runtime's accel processes hold on their sim device (published counters).
      std::int64_t used = 0;
      for (const memory::PublishedUsage& u : memory::read_published_usage()) {
        if (std::find(usage.pids.begin(), usage.pids.end(), u.pid) != usage.pids.end()) used += u.reserved;
      }
      gpu["memory_used"] = used;
    } else {
      for (const hw::GpuInfo& g : hw::query_gpus().gpus) {
        if (static_cast<int>(g.index) != a.device_index) continue;
        gpu["memory_used"] = g.memory_used;
        gpu["utilization"] = g.utilization_gpu ? Json(*g.utilization_gpu) : Json(nullptr);
      }
    }
    out["gpu"] = gpu;
  }
  return out;
}

std::string RuntimeService::metrics() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<std::string, int> by_state = {
      {"queued", 0}, {"starting", 0}, {"running", 0}, {"terminating", 0}, {"terminated", 0}};
  for (const auto& [id, rt] : runtimes_) ++by_state[rt.state];
  std::string out = "# HELP accel_runtimes Runtimes by state.\n# TYPE accel_runtimes gauge\n";
  for (const auto& [state, count] : by_state)
    out += "accel_runtimes{state=\"" + state + "\"} " + std::to_string(count) + "\n";
  out += "# HELP accel_accelerators Accelerators offered, and those not leased.\n# TYPE accel_accelerators gauge\n";
  std::map<std::pair<std::string, bool>, std::pair<int, int>> accelerators;
  const std::vector<bool> leased = leased_accelerators();
  for (std::size_t i = 0; i < inventory_.size(); ++i) {
    auto& [total, free] = accelerators[{inventory_[i].type, inventory_[i].simulated}];
    ++total;
    free += leased[i] ? 0 : 1;
  }
  for (const auto& [key, counts] : accelerators) {
    const std::string labels = "type=\"" + key.first + "\",simulated=\"" + (key.second ? "true" : "false") + "\"";
    out += "accel_accelerators{" + labels + ",status=\"total\"} " + std::to_string(counts.first) + "\n";
    out += "accel_accelerators{" + labels + ",status=\"free\"} " + std::to_string(counts.second) + "\n";
  }
  int running_jobs = 0;
  for (const auto& [id, job] : jobs_) running_jobs += job.state == "running";
  out += "# HELP accel_jobs_running Jobs executing.\n# TYPE accel_jobs_running gauge\naccel_jobs_running " +
         std::to_string(running_jobs) + "\n";
  out += "# HELP accel_jobs_total Jobs started.\n# TYPE accel_jobs_total counter\naccel_jobs_total " +
         std::to_string(jobs_started_) + "\n";
  return out + executor_->metrics();
}

}  // namespace accel::runtime
