// RuntimeService's core: start-up and reconciliation with what still runs, authentication,
// persistence, tenants' identities and environments, and the read-only API. Admission and
// scheduling are in runtime_scheduler.cpp, the lifecycle and enforcement in
// runtime_lifecycle.cpp, jobs and resources in runtime_jobs.cpp.
#include "accel/runtime/runtime_service.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <malloc.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "accel/hw/catalog.h"
#include "accel/hw/gpu_info.h"
#include "accel/hw/pjrt_plugin_search.h"
#include "accel/runtime/local_executor.h"
#include "accel/runtime/slurm_executor.h"
#include "accel/runtime/token.h"

namespace accel::runtime {
namespace fs = std::filesystem;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {
// The last id number handed out: milliseconds since the epoch times 256, plus a count.
std::atomic<std::uint64_t> last_id{0};
}  // namespace

std::string sequential_id(const char* prefix) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::uint64_t candidate = static_cast<std::uint64_t>(ms) << 8;
  std::uint64_t previous = last_id.load(), next = 0;
  do {
    next = std::max(previous + 1, candidate);
  } while (!last_id.compare_exchange_weak(previous, next));
  char digits[24];
  std::snprintf(digits, sizeof digits, "%013llx", static_cast<unsigned long long>(next));
  return prefix + std::string(digits);
}

void note_existing_id(const std::string& id) {
  const auto dash = id.find('-');
  if (dash == std::string::npos) return;
  const std::uint64_t number = std::strtoull(id.c_str() + dash + 1, nullptr, 16);
  std::uint64_t previous = last_id.load();
  while (number > previous && !last_id.compare_exchange_weak(previous, number)) {
  }
}

namespace {

bool is_active(const Runtime& rt) { return rt.state != "terminated"; }

}  // namespace

RuntimeService::RuntimeService(ServiceConfig config, std::string data_dir, bool start_ticker)
    // Absolute: workers and jobs run in their own folders, where a relative path means another place.
    : config_(std::move(config)),
      data_dir_(fs::absolute(data_dir).lexically_normal().string()),
      isolating_(geteuid() == 0) {
  if (!isolating_) {
    const std::string risk =
        "accel serve runs as uid " + std::to_string(geteuid()) +
        ", not root, so it cannot give jobs a uid of their own: every job would run as the service's user and could "
        "read and rewrite its database (users, token hashes, every runtime's record) and every tenant's files";
    if (!config_.allow_unisolated) {
      throw ValueError(risk +
                       ". Start it as root (each user's jobs then run as their own uid), or set "
                       "\"allow_unisolated\": true in the service config to accept this (docs/security.md)");
    }
    std::fprintf(stderr, "accel serve: WARNING: JOBS ARE NOT ISOLATED: %s (allow_unisolated is set)\n", risk.c_str());
  } else {
    uid_claim_ = std::make_unique<UidRangeClaim>(config_.tenant_uid_first, config_.tenant_uid_count, data_dir_);
  }
  // A job's end (or, on a cluster, a runtime's start) wakes the ticker at once (the tick would
  // see it up to tick_s later).
  auto wake = [this] {
    {
      std::lock_guard<std::mutex> lock(wake_mutex_);
      exits_pending_ = true;
    }
    wake_.notify_all();
  };
  if (config_.executor == "slurm") {
    if (!config_.simulated.empty() || !config_.xla_devices.empty()) {
      throw ValueError(
          "service config: with executor slurm the cluster offers the runtime types (executor.types); remove "
          "simulated_devices and xla_devices, which are this machine's");
    }
    executor_ = std::make_unique<SlurmExecutor>(config_.slurm, isolating_, config_.accel_executable,
                                                data_dir_ + "/slurm", wake);
  } else {
    // The cgroup folder is named by the uid range, which no other live service on the machine holds.
    executor_ = std::make_unique<LocalExecutor>(
        isolating_, config_.accel_executable,
        isolating_ && config_.use_cgroups ? "accel-" + std::to_string(config_.tenant_uid_first) : "", wake);
  }
  std::fprintf(stderr, "accel serve: runtimes are confined by %s\n", executor_->confinement().c_str());
  fs::create_directories(data_dir_ + "/runtimes");
  // Tenants may pass through to their runtime's folder, never list the others (each runtime's
  // folder is 0700, its tenant's). The data folder itself keeps its mode: it may be a shared
  // place an operator chose.
  fs::permissions(data_dir_ + "/runtimes", fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::replace);
  for (const char* own : {"/jobs", "/trash"}) {  // the service's alone
    fs::create_directories(data_dir_ + own);
    fs::permissions(data_dir_ + own, fs::perms::owner_all, fs::perm_options::replace);
  }
  std::vector<std::string> leftovers;  // what a stopped service left in the trash
  for (const auto& entry : fs::directory_iterator(data_dir_ + "/trash")) leftovers.push_back(entry.path().string());
  empty_trash(std::move(leftovers));
  if (const std::string why = executor_->unreachable(data_dir_ + "/runtimes"); !why.empty()) throw ValueError(why);
  store_ = std::make_unique<Store>(data_dir_ + "/service.db");
  store_->keep_reserve(reserve_bytes());
  if (config_.discover_gpus && !executor_->places_runtimes()) {
    const hw::GpuReport gpus = hw::query_gpus();
    for (const hw::GpuInfo& g : gpus.gpus) {
      const hw::AcceleratorSpec* spec = hw::match_catalog(g.name, g.memory_total);
      if (!spec) continue;  // not a type tiers can name
      inventory_.push_back({"gpu" + std::to_string(g.index), spec->type, "gpu", g.name, false,
                            static_cast<int>(g.index), static_cast<double>(g.memory_total) / 1e9, ""});
    }
  }
  int sim_index = 0;
  for (const SimulatedDevices& group : config_.simulated) {
    const hw::AcceleratorSpec* spec = hw::find_catalog_type(group.type);
    for (int i = 0; i < group.count; ++i) {
      inventory_.push_back({"sim-" + group.type + "-" + std::to_string(i), spec->type, spec->kind,
                            std::string(spec->name) + " (simulated)", true, sim_index++, spec->memory_gb, ""});
    }
  }
  // TPUs through PJRT: found now (a missing plugin stops the start, naming where it looked), never
  // loaded here: libtpu lets one process hold the TPU, and that is the runtime's job.
  for (const XlaDevices& group : config_.xla_devices) {
    const hw::AcceleratorSpec* spec = hw::find_catalog_type(group.type);
    hw::PjrtPluginLocation plugin;
    try {
      plugin = hw::find_pjrt_plugin(group.plugin);
    } catch (const hw::PjrtPluginError& e) {
      throw ValueError("service config: xla_devices " + group.type + ": " + e.what());
    }
    if (const std::string why = plugin.unsafe_for_tenants(); !why.empty()) {
      throw ValueError("service config: xla_devices " + group.type +
                       ": the PJRT plugin is unsafe for tenants' jobs: " + why);
    }
    const bool real = plugin.is_libtpu();
    for (int i = 0; i < group.count; ++i) {
      Accelerator a{
          "xla-" + group.type + "-" + std::to_string(i),
          spec->type,
          "tpu",
          std::string(spec->name) + (real ? " (libtpu)" : " (simulated by the PJRT plugin " + plugin.path + ")"),
          !real,
          i,
          spec->memory_gb,
          plugin.path};
      inventory_.push_back(std::move(a));
    }
  }
  for (std::size_t i = 0; i < inventory_.size(); ++i) inventory_index_[inventory_[i].id] = i;
  reconcile();
  std::vector<std::pair<WorkerSpec, int>> warm;
  for (const SlurmWarmPool& pool : config_.slurm.warm)
    warm.emplace_back(worker_template(pool.tier, pool.type), pool.count);
  executor_->keep_warm(warm);
  if (start_ticker) {
    ticker_ = std::thread([this] {
      std::string last_error;  // said once, not every tick while the cause lasts
      while (!stopping_) {
        {
          std::unique_lock<std::mutex> lock(wake_mutex_);
          wake_.wait_for(lock, std::chrono::duration<double>(config_.tick_s),
                         [this] { return stopping_.load() || exits_pending_; });
          exits_pending_ = false;
        }
        if (stopping_) break;
        tick();
        try {
          store_->keep_reserve(reserve_bytes());  // made anew once a full disk has room again
          store_->sync();                         // the tick's changes, when no request commits them sooner
          store_->checkpoint();
          // Hand memory freed by the request threads' malloc arenas back to the system, so
          // the daemon's size follows its load instead of its busiest moment.
          malloc_trim(0);
          last_error.clear();
        } catch (const DatabaseUnavailable&) {
          // said once when commits started failing (Store::sync); retried on the next tick
        } catch (const std::exception& e) {
          if (e.what() != last_error) std::fprintf(stderr, "accel serve: %s\n", e.what());
          last_error = e.what();
        }
      }
    });
  }
}

RuntimeService::~RuntimeService() {
  stopping_ = true;
  wake_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  executor_.reset();  // its exit watcher's callback wakes the (stopped) ticker
  // Queued documents are built from this object's inventory: commit them while it exists,
  // waiting a while for a database that cannot be written now (a graceful stop once stored
  // nothing after one failed commit).
  if (!store_->sync_within(kStopWritesS)) {
    std::fprintf(stderr,
                 "accel serve: stopping with changes the database did not take in %g s (%s); the runtimes' last "
                 "states are not stored, and the next start marks them from what it finds\n",
                 kStopWritesS, store_->failure().c_str());
  }
}

const TierPolicy& RuntimeService::tier_of(const std::string& tier) const {
  auto it = config_.tiers.find(tier);
  if (it == config_.tiers.end()) throw ApiError(403, "your tier '" + tier + "' is not configured on this service");
  return it->second;
}

namespace {
const std::string kBearer = "Bearer ";

std::string bearer_token(const std::string& header) {
  if (header.rfind(kBearer, 0) != 0 || header.size() == kBearer.size()) {
    throw ApiError(401, "missing token: send 'Authorization: Bearer TOKEN' (accel admin user add prints one)");
  }
  return header.substr(kBearer.size());
}
}  // namespace

std::optional<User> RuntimeService::known_user(const std::string& header) {
  return cached_user(hash_token(bearer_token(header)));
}

std::optional<User> RuntimeService::cached_user(const std::string& token_hash) {
  std::lock_guard<std::mutex> lock(users_mutex_);
  if (auto it = known_users_.find(token_hash);
      it != known_users_.end() && now_seconds() - it->second.second < kUserCacheS)
    return it->second.first;
  return std::nullopt;
}

User RuntimeService::authenticate(const std::string& header) {
  // Known tokens are remembered for a few seconds: the database lookup shares the connection
  // with the commits, and every request would wait for the transaction in progress. Users are
  // added by `accel admin` in another process: an unknown token always asks the database.
  const std::string token_hash = hash_token(bearer_token(header));
  if (auto user = cached_user(token_hash)) return *user;
  auto user = store_->user_by_token_hash(token_hash);
  if (!user) throw ApiError(401, "unknown token");
  std::lock_guard<std::mutex> lock(users_mutex_);
  if (known_users_.size() > 10000) known_users_.clear();  // bounded: a flood of tokens cannot grow it
  known_users_[token_hash] = {*user, now_seconds()};
  return *user;
}

Json RuntimeService::to_json(const Runtime& rt) const {
  // Fields emplaced into the object one by one: the {{key, value}, ...} form builds a
  // two-element array per field first, and took 2.5x as long (every answer and every stored
  // document calls this).
  Json j = Json::object();
  Json::object_t& o = *j.get_ptr<Json::object_t*>();
  o.emplace("id", rt.id);
  o.emplace("user", rt.user);
  o.emplace("tier", rt.tier);
  o.emplace("requested_type", rt.requested_type);
  o.emplace("type", rt.type);
  o.emplace("accelerator", rt.accelerator_id);
  o.emplace("state", rt.state);
  o.emplace("reason", rt.reason);
  o.emplace("priority", rt.priority);
  o.emplace("preemptible", rt.preemptible);
  o.emplace("background_execution", rt.background);
  o.emplace("created_at", rt.created_at);
  o.emplace("started_at", rt.started_at);
  o.emplace("ended_at", rt.ended_at);
  o.emplace("last_activity", rt.last_activity);
  o.emplace("terminate_at", rt.terminate_at);
  o.emplace("warned_idle", rt.warned_idle);
  o.emplace("warned_lifetime", rt.warned_lifetime);
  o.emplace("worker", rt.worker);
  o.emplace("workdir", rt.workdir);
  o.emplace("pending_reason", rt.pending_reason);
  if (rt.deleted) j["deleted"] = true;
  // By the index: comparing the id with every accelerator's was most of this function's time
  // on a machine of 100 (every answer and every stored document calls it).
  if (auto it = inventory_index_.find(rt.accelerator_id); it != inventory_index_.end()) {
    j["accelerator_name"] = inventory_[it->second].name;
    j["simulated"] = inventory_[it->second].simulated;
  }
  if (const auto mapped = config_.slurm.types.find(rt.type);
      config_.executor == "slurm" && rt.type != "cpu" && mapped != config_.slurm.types.end()) {
    if (const hw::AcceleratorSpec* spec = hw::find_catalog_type(rt.type))
      j["accelerator_name"] = std::string(spec->name) + (mapped->second.simulated ? " (simulated)" : "");
    j["simulated"] = mapped->second.simulated;
  }
  // Clients that keep a runtime alive (accel run, the web page) pace their heartbeats by it.
  if (auto tier = config_.tiers.find(rt.tier); tier != config_.tiers.end())
    j["idle_timeout_s"] = tier->second.idle_timeout_s;
  return j;
}

Json RuntimeService::to_json(const Job& job) const {
  return {{"id", job.id},
          {"runtime", job.runtime_id},
          {"user", job.user},
          {"command", job.command},
          {"state", job.state},
          {"handle", job.handle},
          {"exit_code", job.exit_code ? Json(*job.exit_code) : Json(nullptr)},
          {"started_at", job.started_at},
          {"ended_at", job.ended_at}};
}

// The document is built at commit time, by whichever thread commits, from a copy (to_json
// reads only the record and the inventory, which never changes after start-up).
void RuntimeService::save(const Runtime& rt) {
  store_->put("runtimes", rt.id, rt.user, [this, copy = rt] { return to_json(copy); });
}

void RuntimeService::save(const Job& job) {
  store_->put("jobs", job.id, job.user, [this, copy = job] { return to_json(copy); });
}

void RuntimeService::event(const Runtime& rt, const std::string& kind, const std::string& message) {
  store_->add_event({now_seconds(), rt.id, kind, message});
}

void RuntimeService::reconcile() {
  for (const Json& j : store_->all("runtimes")) {
    Runtime rt;
    rt.id = j["id"];
    rt.user = j["user"];
    rt.tier = j.value("tier", "");
    rt.requested_type = j["requested_type"];
    rt.type = j["type"];
    rt.accelerator_id = j["accelerator"];
    rt.state = j["state"];
    rt.reason = j["reason"];
    rt.priority = j["priority"];
    rt.preemptible = j["preemptible"];
    rt.background = j["background_execution"];
    rt.created_at = j["created_at"];
    rt.started_at = j["started_at"];
    rt.ended_at = j["ended_at"];
    rt.last_activity = j["last_activity"];
    rt.terminate_at = j["terminate_at"];
    rt.warned_idle = j["warned_idle"];
    rt.warned_lifetime = j["warned_lifetime"];
    rt.worker = j.value("worker", "");
    if (j.contains("worker_pid") && j["worker_pid"] != 0)  // stored before executors had handles
      rt.worker = LocalExecutor::handle_of({j["worker_pid"], j.value("worker_start", std::uint64_t{0}), rt.id});
    rt.workdir = j["workdir"];
    rt.pending_reason = j["pending_reason"];
    rt.deleted = j.value("deleted", false);
    note_existing_id(rt.id);
    Runtime& stored = runtimes_[rt.id] = rt;
    if (is_active(stored)) active_[rt.id] = &stored;
  }
  for (const Json& j : store_->all("jobs")) {
    Job job;
    job.id = j["id"];
    note_existing_id(job.id);
    job.runtime_id = j["runtime"];
    job.user = j["user"];
    job.command = j["command"].get<std::vector<std::string>>();
    job.state = j["state"];
    job.handle = j.value("handle", "");
    if (j.contains("monitor_pid")) {  // stored before executors had handles
      job.handle = LocalExecutor::handle_of({j["monitor_pid"], j.value("monitor_start", std::uint64_t{0}),
                                             data_dir_ + "/jobs/" + job.runtime_id + "/" + job.id + ".exit"});
    }
    if (!j["exit_code"].is_null()) job.exit_code = j["exit_code"].get<int>();
    job.started_at = j["started_at"];
    job.ended_at = j["ended_at"];
    jobs_[job.id] = job;
    if (job.state == "running") executor_->watch_job(job.handle);  // adopted: seen when it ends
  }
  jobs_started_ = jobs_.size();
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Runtime*> with_worker;
  std::vector<Handle> workers;
  for (Runtime* rt : active_runtimes()) {
    if (rt->state != "running" && rt->state != "starting" && rt->state != "terminating") continue;
    if (rt->worker.empty()) continue;  // no job has run: no worker to adopt
    with_worker.push_back(rt);
    workers.push_back(rt->worker);
  }
  std::vector<WorkerStatus> statuses;
  try {
    statuses = executor_->poll_workers(workers);  // one batch
  } catch (const ExecutorUnavailable& e) {
    // Nothing is known, so nothing is concluded: the records stay, and the ticks ask again.
    std::fprintf(stderr, "accel serve: %s; the runtimes keep their records until it answers\n", e.what());
    executor_error_ = e.what();
    with_worker.clear();
  }
  for (std::size_t i = 0; i < with_worker.size(); ++i) {
    Runtime& rt = *with_worker[i];
    if (statuses[i].state != WorkerStatus::State::ended) {
      event(rt, "adopted",
            "service restarted; worker " + executor_->describe(rt.worker) + " is alive and re-adopted" +
                (statuses[i].detail.empty() ? "" : " (" + statuses[i].detail + ")"));
      continue;
    }
    rt.pending_reason = rt.state == "terminating"    ? rt.pending_reason
                        : statuses[i].reason.empty() ? "worker crashed"
                                                     : statuses[i].reason;
    event(rt, "worker_lost",
          "service restarted; worker " + executor_->describe(rt.worker) + " is gone" +
              (statuses[i].detail.empty() ? "" : " (" + statuses[i].detail + ")"));
    finish_termination(rt);
  }
  for (auto& [id, job] : jobs_) {
    if (job.state == "running" && executor_->poll_jobs({job.handle}).front().running) {
      if (auto rt = runtimes_.find(job.runtime_id); rt != runtimes_.end())
        event(rt->second, "adopted", "job " + id + " re-adopted");
    }
  }
  // What an earlier run left in the engine that no runtime holds (killed between a delete and
  // its cancel; its warm allocations) would hold the cluster's GPUs until its time limit.
  std::vector<Handle> held;
  for (Runtime* rt : active_runtimes())
    if (!rt->worker.empty()) held.push_back(rt->worker);
  try {
    if (const int orphans = executor_->end_orphans(held); orphans > 0)
      std::fprintf(stderr, "accel serve: ended %d worker(s) an earlier run of this service left and no runtime holds\n",
                   orphans);
  } catch (const ExecutorUnavailable& e) {
    std::fprintf(stderr, "accel serve: no look for an earlier run's leftover workers: %s\n", e.what());
  }
}

Identity RuntimeService::identity_of(const std::string& user) {
  if (!isolating_) return {};
  if (const auto known = identities_.find(user); known != identities_.end()) return known->second;
  const long long number = store_->tenant_number(user);
  if (number > config_.tenant_uid_count) {
    throw ApiError(503, "no tenant uid is left for user '" + user + "': " + std::to_string(config_.tenant_uid_count) +
                            " have been handed out; raise tenant_uid_count in the service config");
  }
  const long long uid = config_.tenant_uid_first + number - 1;
  // A uid or gid of a real account would hand that account's files (or group's) to the tenant.
  const passwd* account = getpwuid(static_cast<uid_t>(uid));
  const group* team = getgrgid(static_cast<gid_t>(uid));
  if (account || team) {
    throw ApiError(503, "tenant uid " + std::to_string(uid) + " for user '" + user + "' belongs to " +
                            (account ? "the account '" + std::string(account->pw_name) + "'"
                                     : "the group '" + std::string(team->gr_name) + "'") +
                            " on this machine; move tenant_uid_first in the service config to a free range");
  }
  return identities_[user] = {uid, uid};
}

Environment RuntimeService::lease_environment(const Runtime& rt) const {
  Environment env = {{"ACCEL_RUNTIME_ID", rt.id},
                     {"HOME", rt.workdir},
                     {"TMPDIR", rt.workdir + "/.tmp"},
                     {"CUDA_VISIBLE_DEVICES", ""},
                     {"ACCEL_DEVICE", "cpu"}};
  env.emplace_back("ACCEL_MEMORY_FRACTION", std::to_string(tier_of(rt.tier).memory_fraction));
  const auto set = [&env](const std::string& key, const std::string& value) {
    for (auto& [name, existing] : env) {
      if (name == key) existing = value;
    }
  };
  for (const Accelerator& a : inventory_) {
    if (a.id != rt.accelerator_id) continue;
    if (a.kind == "gpu" && !a.simulated) {
      set("CUDA_VISIBLE_DEVICES", std::to_string(a.device_index));
      set("ACCEL_DEVICE", "cuda:0");
    } else if (a.kind == "gpu") {
      // A simulated GPU: accel's sim device with the catalog's memory, labelled as such.
      env.emplace_back("ACCEL_SIMULATED", "1");
      set("ACCEL_DEVICE", "sim:0");
      env.emplace_back("ACCEL_SIM_MEMORY", std::to_string(static_cast<long long>(a.memory_gb * 1e9)));
    } else if (!a.pjrt_plugin.empty()) {
      // A TPU through PJRT: `accel train` (auto) trains on it, and any PJRT client (JAX,
      // accel) finds the plugin; libtpu's own variable too, for libtpu itself.
      env.emplace_back("ACCEL_PJRT_PLUGIN", a.pjrt_plugin);
      set("ACCEL_DEVICE", a.simulated ? "xla" : "tpu");
      if (!a.simulated) env.emplace_back("TPU_LIBRARY_PATH", a.pjrt_plugin);
      env.emplace_back("ACCEL_TPU_ADDR", a.simulated ? "simulated-" + a.id + ":8470" : "localhost:8470");
      if (a.simulated) env.emplace_back("ACCEL_SIMULATED", "1");
    } else {
      env.emplace_back("ACCEL_TPU_ADDR", a.simulated ? "simulated-" + a.id + ":8470" : "localhost:8470");
      if (a.simulated) env.emplace_back("ACCEL_SIMULATED", "1");
    }
  }
  if (const auto mapped = config_.slurm.types.find(rt.type);
      executor_->places_runtimes() && rt.type != "cpu" && mapped != config_.slurm.types.end()) {
    // Slurm sets CUDA_VISIBLE_DEVICES in each step to the allocation's GPUs: left to it.
    env.erase(std::remove_if(env.begin(), env.end(), [](const auto& e) { return e.first == "CUDA_VISIBLE_DEVICES"; }),
              env.end());
    if (mapped->second.simulated) {  // the cluster's stand-ins (a test cluster's fake GPUs)
      env.emplace_back("ACCEL_SIMULATED", "1");
      set("ACCEL_DEVICE", "sim:0");
      if (const hw::AcceleratorSpec* spec = hw::find_catalog_type(rt.type))
        env.emplace_back("ACCEL_SIM_MEMORY", std::to_string(static_cast<long long>(spec->memory_gb * 1e9)));
    } else {
      set("ACCEL_DEVICE", "cuda:0");
    }
  }
  return env;
}

Runtime& RuntimeService::owned(const User& user, const std::string& id) {
  auto it = runtimes_.find(id);
  // Another user's runtime answers exactly like a missing one, and so does a deleted one.
  if (it == runtimes_.end() || it->second.deleted || (!user.admin && it->second.user != user.name)) {
    throw ApiError(404, "no runtime '" + id + "'");
  }
  return it->second;
}

Json RuntimeService::list(const User& user) {
  std::lock_guard<std::mutex> lock(mutex_);
  Json out = Json::array();
  for (const auto& [id, rt] : runtimes_) {
    if (!rt.deleted && (user.admin || rt.user == user.name)) out.push_back(to_json(rt));
  }
  return out;
}

Json RuntimeService::get(const User& user, const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!runtimes_.count(id)) {
    if (auto doc = stored_runtime(user, id)) return *doc;
  }
  return to_json(owned(user, id));
}

std::optional<Json> RuntimeService::stored_runtime(const User& user, const std::string& id) {
  auto doc = store_->find("runtimes", id);
  if (!doc || doc->value("deleted", false) || !(user.admin || (*doc)["user"] == user.name)) return std::nullopt;
  return doc;
}

Json RuntimeService::events(const User& user, const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!runtimes_.count(id)) {
    if (!stored_runtime(user, id)) throw ApiError(404, "no runtime '" + id + "'");
  } else {
    owned(user, id);
  }
  Json out = Json::array();
  for (const Event& e : store_->events(id)) out.push_back({{"time", e.time}, {"kind", e.kind}, {"message", e.message}});
  return out;
}

}  // namespace accel::runtime
