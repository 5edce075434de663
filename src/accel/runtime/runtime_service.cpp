// The runtime lifecycle: placement, queue, preemption, limits, restart, reconciliation.
#include "accel/runtime/runtime_service.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <malloc.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "accel/hw/catalog.h"
#include "accel/hw/gpu_info.h"
#include "accel/runtime/local_executor.h"
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
bool holds_accelerator(const Runtime& rt) {
  return !rt.accelerator_id.empty() && (rt.state == "starting" || rt.state == "running" || rt.state == "terminating");
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

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
  // A job's end wakes the ticker at once (the tick would see it up to tick_s later). The
  // cgroup folder is named by the uid range, which no other live service on the machine holds.
  executor_ =
      std::make_unique<LocalExecutor>(isolating_, config_.accel_executable,
                                      isolating_ ? "accel-" + std::to_string(config_.tenant_uid_first) : "", [this] {
                                        {
                                          std::lock_guard<std::mutex> lock(wake_mutex_);
                                          exits_pending_ = true;
                                        }
                                        wake_.notify_all();
                                      });
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
  if (config_.discover_gpus) {
    const hw::GpuReport gpus = hw::query_gpus();
    for (const hw::GpuInfo& g : gpus.gpus) {
      const hw::AcceleratorSpec* spec = hw::match_catalog(g.name, g.memory_total);
      if (!spec) continue;  // not a type tiers can name
      inventory_.push_back({"gpu" + std::to_string(g.index), spec->type, "gpu", g.name, false,
                            static_cast<int>(g.index), static_cast<double>(g.memory_total) / 1e9});
    }
  }
  int sim_index = 0;
  for (const SimulatedDevices& group : config_.simulated) {
    const hw::AcceleratorSpec* spec = hw::find_catalog_type(group.type);
    for (int i = 0; i < group.count; ++i) {
      inventory_.push_back({"sim-" + group.type + "-" + std::to_string(i), spec->type, spec->kind,
                            std::string(spec->name) + " (simulated)", true, sim_index++, spec->memory_gb});
    }
  }
  for (std::size_t i = 0; i < inventory_.size(); ++i) inventory_index_[inventory_[i].id] = i;
  reconcile();
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

User RuntimeService::authenticate(const std::string& header) {
  const std::string prefix = "Bearer ";
  if (header.rfind(prefix, 0) != 0 || header.size() == prefix.size()) {
    throw ApiError(401, "missing token: send 'Authorization: Bearer TOKEN' (accel admin user add prints one)");
  }
  const std::string token_hash = hash_token(header.substr(prefix.size()));
  // Known tokens are remembered for a few seconds: the database lookup shares the connection
  // with the commits, and every request would wait for the transaction in progress. Users are
  // added by `accel admin` in another process: an unknown token always asks the database.
  const double now = now_seconds();
  {
    std::lock_guard<std::mutex> lock(users_mutex_);
    if (auto it = known_users_.find(token_hash); it != known_users_.end() && now - it->second.second < kUserCacheS)
      return it->second.first;
  }
  auto user = store_->user_by_token_hash(token_hash);
  if (!user) throw ApiError(401, "unknown token");
  std::lock_guard<std::mutex> lock(users_mutex_);
  if (known_users_.size() > 10000) known_users_.clear();  // bounded: a flood of tokens cannot grow it
  known_users_[token_hash] = {*user, now};
  return *user;
}

// ---- persistence ---------------------------------------------------------------------------

Json RuntimeService::to_json(const Runtime& rt) const {
  Json j = {{"id", rt.id},
            {"user", rt.user},
            {"tier", rt.tier},
            {"requested_type", rt.requested_type},
            {"type", rt.type},
            {"accelerator", rt.accelerator_id},
            {"state", rt.state},
            {"reason", rt.reason},
            {"priority", rt.priority},
            {"preemptible", rt.preemptible},
            {"background_execution", rt.background},
            {"created_at", rt.created_at},
            {"started_at", rt.started_at},
            {"ended_at", rt.ended_at},
            {"last_activity", rt.last_activity},
            {"terminate_at", rt.terminate_at},
            {"warned_idle", rt.warned_idle},
            {"warned_lifetime", rt.warned_lifetime},
            {"worker", rt.worker},
            {"workdir", rt.workdir},
            {"pending_reason", rt.pending_reason}};
  if (rt.deleted) j["deleted"] = true;
  for (const Accelerator& a : inventory_) {
    if (a.id == rt.accelerator_id) {
      j["accelerator_name"] = a.name;
      j["simulated"] = a.simulated;
    }
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
  for (Runtime* active : active_runtimes()) {
    Runtime& rt = *active;
    if (rt.state != "running" && rt.state != "starting" && rt.state != "terminating") continue;
    if (rt.worker.empty()) continue;  // no job has run: no worker to adopt
    if (executor_->workers_alive({rt.worker}).front()) {
      event(rt, "adopted", "service restarted; worker " + executor_->describe(rt.worker) + " is alive and re-adopted");
      continue;
    }
    rt.pending_reason = rt.state == "terminating" ? rt.pending_reason : "worker crashed";
    event(rt, "worker_lost", "service restarted; worker " + executor_->describe(rt.worker) + " is gone");
    finish_termination(rt);
  }
  for (auto& [id, job] : jobs_) {
    if (job.state == "running" && executor_->poll_jobs({job.handle}).front().running) {
      if (auto rt = runtimes_.find(job.runtime_id); rt != runtimes_.end())
        event(rt->second, "adopted", "job " + id + " re-adopted");
    }
  }
}

// ---- placement -----------------------------------------------------------------------------

std::vector<std::string> RuntimeService::candidate_types(const User& user, const std::string& requested) {
  const TierPolicy& tier = tier_of(user.tier);
  const auto valid = [] {  // for the error message only
    std::vector<std::string> names = {"cpu", "gpu", "tpu"};
    for (const hw::AcceleratorSpec& spec : hw::accelerator_catalog())
      names.push_back(std::string(spec.kind) + ":" + spec.type);
    return names;
  };
  std::vector<std::string> types;
  const auto colon = requested.find(':');
  const std::string kind = requested.substr(0, colon);
  if (requested == "cpu") {
    types = {"cpu"};
  } else if ((kind == "gpu" || kind == "tpu") && colon == std::string::npos) {
    for (const std::string& t : tier.accelerator_types) {
      const hw::AcceleratorSpec* spec = hw::find_catalog_type(t);
      if (spec && spec->kind == kind) types.push_back(t);
    }
    if (types.empty())
      throw ApiError(403,
                     "tier " + tier.name + " includes no " + kind + " (allowed: " + join(tier.accelerator_types) + ")");
    return types;
  } else if ((kind == "gpu" || kind == "tpu") && colon != std::string::npos) {
    const std::string type = requested.substr(colon + 1);
    const hw::AcceleratorSpec* spec = hw::find_catalog_type(type);
    if (!spec || spec->kind != kind) {
      throw ApiError(400, "unknown runtime type '" + requested + "' in field 'type'; valid: " + join(valid()));
    }
    types = {type};
  } else {
    throw ApiError(400, "unknown runtime type '" + requested + "' in field 'type'; valid: " + join(valid()));
  }
  for (const std::string& t : types) {
    if (std::find(tier.accelerator_types.begin(), tier.accelerator_types.end(), t) == tier.accelerator_types.end()) {
      throw ApiError(
          403, "tier " + tier.name + " does not include " + t + " (allowed: " + join(tier.accelerator_types) + ")");
    }
  }
  return types;
}

std::vector<bool> RuntimeService::leased_accelerators() const {
  std::vector<bool> leased(inventory_.size());
  for (const auto& [id, rt] : active_) {
    if (!holds_accelerator(*rt)) continue;
    if (auto it = inventory_index_.find(rt->accelerator_id); it != inventory_index_.end()) leased[it->second] = true;
  }
  return leased;
}

std::vector<Runtime*> RuntimeService::active_runtimes() const {
  std::vector<Runtime*> out;
  out.reserve(active_.size());
  for (const auto& [id, rt] : active_) out.push_back(rt);
  return out;
}

const Accelerator* RuntimeService::free_accelerator(const std::vector<std::string>& types) const {
  const std::vector<bool> leased = leased_accelerators();
  for (const std::string& type : types) {
    for (std::size_t i = 0; i < inventory_.size(); ++i) {
      if (inventory_[i].type == type && !leased[i]) return &inventory_[i];
    }
  }
  return nullptr;
}

bool RuntimeService::place(Runtime& rt) {
  std::vector<std::string> types;
  if (rt.requested_type == "cpu") {
    start(rt, nullptr);
    return true;
  }
  types = candidate_types(User{rt.user, rt.tier, false}, rt.requested_type);
  if (const Accelerator* a = free_accelerator(types)) {
    start(rt, a);
    return true;
  }
  return false;
}

JobLimits RuntimeService::job_limits(const Runtime& rt) const {
  JobLimits limits = tier_of(rt.tier).limits;
  if (auto it = inventory_index_.find(rt.accelerator_id); it != inventory_index_.end()) {
    const Accelerator& a = inventory_[it->second];
    if (a.kind == "gpu" && !a.simulated) limits.ram_gb = 0;
  }
  return limits;
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
    } else {
      env.emplace_back("ACCEL_TPU_ADDR", a.simulated ? "simulated-" + a.id + ":8470" : "localhost:8470");
      if (a.simulated) env.emplace_back("ACCEL_SIMULATED", "1");
    }
  }
  return env;
}

void RuntimeService::start(Runtime& rt, const Accelerator* accelerator) {
  // The lease is made now; the working directory and the worker process group come with the
  // first job (ensure_worker), so admitting a runtime costs no process and no filesystem work,
  // and a runtime that runs nothing holds neither (measured in docs/performance.md).
  rt.type = accelerator ? accelerator->type : "cpu";
  rt.accelerator_id = accelerator ? accelerator->id : "";
  rt.workdir = data_dir_ + "/runtimes/" + rt.id;
  rt.worker.clear();
  rt.state = "running";
  rt.started_at = now_seconds();
  rt.last_activity = rt.started_at;
  rt.warned_idle = rt.warned_lifetime = false;
  save(rt);
  event(rt, "started",
        "leased " + (accelerator ? accelerator->name + " (" + accelerator->id + ")" : std::string("cpu")) +
            "; the worker starts with the first job");
}

void RuntimeService::ensure_worker(Runtime& rt) {
  if (!rt.worker.empty()) return;
  // The working directory comes with the first job (run_job makes job_dir).
  rt.worker = executor_->start_worker(
      {rt.id, identity_of(rt.user), rt.workdir, lease_environment(rt), tier_of(rt.tier).runtime_limits});
  save(rt);
  event(rt, "worker_started", "worker " + executor_->describe(rt.worker));
}

void RuntimeService::begin_termination(Runtime& rt, const std::string& reason, double grace_s) {
  if (rt.state == "queued") {
    rt.pending_reason = reason;
    finish_termination(rt);
    return;
  }
  rt.state = "terminating";
  rt.pending_reason = reason;
  rt.terminate_at = now_seconds() + grace_s;
  if (!rt.worker.empty()) executor_->terminate(rt.worker);  // jobs may checkpoint
  save(rt);
  char grace[48];
  std::snprintf(grace, sizeof grace, ", SIGKILL in %g s", grace_s);
  event(rt, "terminating", reason + ": SIGTERM sent" + (grace_s > 0 ? grace : ""));
  if (grace_s <= 0) finish_termination(rt);
}

void RuntimeService::kill_worker(Runtime& rt) {
  if (rt.worker.empty()) return;
  executor_->kill(rt.worker);
  std::vector<Job*> running;
  std::vector<Handle> handles;
  for (auto& [id, job] : jobs_) {
    if (job.runtime_id != rt.id || job.state != "running") continue;
    running.push_back(&job);
    handles.push_back(job.handle);
  }
  // A job that ended before the kill has its status on file; one the kill ended has not, and
  // its status is the signal's.
  const std::vector<JobStatus> statuses = executor_->poll_jobs(handles);
  for (std::size_t i = 0; i < running.size(); ++i) {
    Job& job = *running[i];
    job.exit_code = statuses[i].exit_code;
    job.state = job.exit_code ? "exited" : "killed";
    if (!job.exit_code) job.exit_code = 128 + SIGKILL;
    job.ended_at = now_seconds();
    save(job);
  }
  rt.worker.clear();
}

void RuntimeService::finish_termination(Runtime& rt) {
  const bool had_worker = !rt.worker.empty();
  kill_worker(rt);
  rt.state = "terminated";
  active_.erase(rt.id);
  if (had_worker && isolating_) {
    // A job may have left the runtime's process group (setsid, a daemon): with the tenant's
    // last runtime gone, nothing of theirs may run on, so every process of their uid ends.
    bool others = false;
    for (const auto& [other_id, other] : active_) others |= other->user == rt.user && !other->worker.empty();
    if (!others) {
      if (const int stray = executor_->end_tenant(identity_of(rt.user)); stray > 0)
        event(rt, "strays_killed", std::to_string(stray) + " process(es) outside the runtime's group ended");
    }
  }
  rt.reason = rt.pending_reason.empty() ? "user" : rt.pending_reason;
  rt.ended_at = now_seconds();
  save(rt);
  event(rt, "terminated", "reason: " + rt.reason);
}

bool RuntimeService::try_preempt_for(const Runtime& waiting) {
  const std::vector<std::string> types =
      candidate_types(User{waiting.user, waiting.tier, false}, waiting.requested_type);
  // One preemption at a time per type: a victim already ending will free what is needed.
  for (const auto& [id, rt] : active_) {
    if (rt->state == "terminating" && rt->pending_reason == "preempted" &&
        std::find(types.begin(), types.end(), rt->type) != types.end()) {
      return true;
    }
  }
  Runtime* victim = nullptr;
  for (const auto& [id, rt] : active_) {
    if (rt->state != "running" || !rt->preemptible || rt->priority >= waiting.priority) continue;
    if (std::find(types.begin(), types.end(), rt->type) == types.end()) continue;
    if (!victim || rt->priority < victim->priority ||
        (rt->priority == victim->priority && rt->started_at > victim->started_at)) {
      victim = rt;
    }
  }
  if (!victim) return false;
  event(*victim, "preempted",
        "a priority-" + std::to_string(waiting.priority) + " runtime (" + waiting.id + ") needs its " + victim->type);
  begin_termination(*victim, "preempted", config_.preemption_grace_s);
  return true;
}

void RuntimeService::process_queue() {
  std::vector<Runtime*> queued;
  for (const auto& [id, rt] : active_) {
    if (rt->state == "queued") queued.push_back(rt);
  }
  std::sort(queued.begin(), queued.end(), [](const Runtime* a, const Runtime* b) {
    return a->priority != b->priority ? a->priority > b->priority : a->created_at < b->created_at;
  });
  for (Runtime* rt : queued) {
    if (!place(*rt)) try_preempt_for(*rt);
  }
}

void RuntimeService::touch(Runtime& rt) {
  rt.last_activity = now_seconds();
  rt.warned_idle = false;
}

// ---- API -----------------------------------------------------------------------------------

Runtime& RuntimeService::owned(const User& user, const std::string& id) {
  auto it = runtimes_.find(id);
  // Another user's runtime answers exactly like a missing one, and so does a deleted one.
  if (it == runtimes_.end() || it->second.deleted || (!user.admin && it->second.user != user.name)) {
    throw ApiError(404, "no runtime '" + id + "'");
  }
  return it->second;
}

Json RuntimeService::runtime_types(const User& user) {
  std::lock_guard<std::mutex> lock(mutex_);
  const TierPolicy& tier = tier_of(user.tier);
  Json out = Json::array();
  out.push_back({{"type", "cpu"}, {"kind", "cpu"}, {"allowed", true}, {"total", nullptr}, {"free", nullptr}});
  const std::vector<bool> leased = leased_accelerators();
  for (const hw::AcceleratorSpec& spec : hw::accelerator_catalog()) {
    int total = 0, free = 0;
    bool simulated = false;
    for (std::size_t i = 0; i < inventory_.size(); ++i) {
      if (inventory_[i].type != spec.type) continue;
      ++total;
      simulated = simulated || inventory_[i].simulated;
      free += leased[i] ? 0 : 1;
    }
    if (total == 0) continue;
    const bool allowed = std::find(tier.accelerator_types.begin(), tier.accelerator_types.end(), spec.type) !=
                         tier.accelerator_types.end();
    out.push_back({{"type", std::string(spec.kind) + ":" + spec.type},
                   {"kind", spec.kind},
                   {"name", spec.name},
                   {"memory_gb", spec.memory_gb},
                   {"best_for", spec.best_for},
                   {"allowed", allowed},
                   {"simulated", simulated},
                   {"total", total},
                   {"free", free}});
  }
  return {{"tier", tier.name}, {"types", out}};
}

Runtime RuntimeService::create_runtime(const User& user, const Json& body) {
  if (!body.is_object() || !body.contains("type") || !body["type"].is_string()) {
    throw ApiError(400, "field 'type' is required and must be a string: cpu, gpu, gpu:t4, tpu, tpu:v2-8, ...");
  }
  if (body.contains("wait") && !body["wait"].is_boolean()) throw ApiError(400, "field 'wait' must be true or false");
  const std::string requested = body["type"];
  const bool wait = body.value("wait", true);
  std::lock_guard<std::mutex> lock(mutex_);
  const TierPolicy& tier = tier_of(user.tier);
  const std::vector<std::string> types = candidate_types(user, requested);
  const bool accelerated = types.front() != "cpu";
  int active = 0, active_accelerated = 0;
  for (const auto& [id, rt] : active_) {
    if (rt->user != user.name) continue;
    ++active;
    active_accelerated += rt->requested_type != "cpu";
  }
  if (active >= tier.max_runtimes) {
    std::string listed;  // for the message only
    for (const auto& [id, rt] : active_) {
      if (rt->user == user.name) listed += (listed.empty() ? "" : ", ") + id;
    }
    throw ApiError(429, "tier " + tier.name + " allows " + std::to_string(tier.max_runtimes) +
                            " runtime(s) at a time; you have " + std::to_string(active) + " (" + listed +
                            "): delete one first");
  }
  if (accelerated && active_accelerated >= tier.max_accelerated) {
    throw ApiError(429, "tier " + tier.name + " allows " + std::to_string(tier.max_accelerated) +
                            " GPU/TPU runtime(s) at a time; delete one or ask for cpu");
  }
  Runtime rt;
  rt.id = sequential_id("rt-");
  rt.user = user.name;
  rt.tier = tier.name;
  rt.requested_type = requested;
  // Until placed, the type shown is the first candidate this service offers ("gpu" on an H200
  // host waits for h200, not the tier's first GPU model); start() records the one leased.
  rt.type = types.front();
  for (const std::string& t : types) {
    if (std::any_of(inventory_.begin(), inventory_.end(), [&](const Accelerator& a) { return a.type == t; })) {
      rt.type = t;
      break;
    }
  }
  rt.state = "queued";
  rt.priority = tier.priority;
  rt.preemptible = tier.preemptible;
  rt.background = tier.background_execution;
  rt.created_at = now_seconds();
  if (!accelerated || free_accelerator(types)) {
    Runtime& stored = runtimes_[rt.id] = rt;
    active_[rt.id] = &stored;
    save(stored);
    event(stored, "created", "requested " + requested);
    place(stored);
    return stored;
  }
  int total = 0;
  for (const Accelerator& a : inventory_) total += std::find(types.begin(), types.end(), a.type) != types.end();
  if (total == 0) {
    throw ApiError(
        503, "this service has no " + join(types) + " (it offers: " + [&] {
          std::vector<std::string> offered;
          for (const Accelerator& a : inventory_) offered.push_back(a.type + (a.simulated ? " (simulated)" : ""));
          return offered.empty() ? std::string("cpu only") : join(offered);
        }() + ")");
  }
  if (!wait) {
    throw ApiError(503, "no " + join(types) + " is free (" + std::to_string(total) +
                            " in use); try later, or create with \"wait\": true to queue");
  }
  const auto queued =
      std::count_if(active_.begin(), active_.end(), [](const auto& e) { return e.second->state == "queued"; });
  if (queued >= config_.max_queue)
    throw ApiError(503, "the queue is full (" + std::to_string(queued) + " waiting); try later");
  Runtime& stored = runtimes_[rt.id] = rt;
  active_[rt.id] = &stored;
  save(stored);
  event(stored, "queued", "no " + join(types) + " free; waiting at priority " + std::to_string(rt.priority));
  try_preempt_for(stored);
  return stored;
}

Json RuntimeService::create(const User& user, const Json& body) { return to_json(create_runtime(user, body)); }

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

Runtime RuntimeService::remove_runtime(const User& user, const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Runtime& rt = owned(user, id);
  if (rt.state != "terminated") begin_termination(rt, "user", 0);
  // Deleted means gone from the API (404 from now on, also for its jobs and events); the
  // database keeps the record, marked, for the operator.
  rt.deleted = true;
  save(rt);
  // Delete frees everything, but not under the lock (nor inside the combiner's batch): a
  // runtime with 200k files made every other user's requests wait seconds. Its folders are
  // renamed into the trash at once and emptied by a thread of their own.
  std::vector<std::string> doomed;
  for (const std::string& path : {rt.workdir, job_dir(rt)}) {
    if (path.empty() || !fs::exists(path)) continue;
    const std::string to = data_dir_ + "/trash/" + rt.id + (path == rt.workdir ? "-files" : "-jobs");
    std::error_code ec;
    fs::rename(path, to, ec);
    doomed.push_back(ec ? path : to);  // another file system: deleted where it is, still off the lock
  }
  empty_trash(std::move(doomed));
  process_queue();
  return rt;
}

void RuntimeService::empty_trash(std::vector<std::string> paths) {
  if (paths.empty()) return;
  std::thread([paths = std::move(paths)] {
    std::error_code ec;
    for (const std::string& path : paths) fs::remove_all(path, ec);
  }).detach();
}

Json RuntimeService::remove(const User& user, const std::string& id) { return to_json(remove_runtime(user, id)); }

Json RuntimeService::restart(const User& user, const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Runtime& rt = owned(user, id);
  if (rt.state != "running")
    throw ApiError(409, "runtime " + id + " is " + rt.state + "; only a running runtime restarts");
  kill_worker(rt);  // same lease, same files; fresh processes from the next job on
  touch(rt);
  save(rt);
  event(rt, "restarted", "worker and jobs killed; files kept; a new worker starts with the next job");
  return to_json(rt);
}

Json RuntimeService::change_type(const User& user, const std::string& id, const Json& body) {
  if (!body.is_object() || !body.contains("type") || !body["type"].is_string()) {
    throw ApiError(400, "field 'type' is required and must be a string: cpu, gpu, gpu:t4, tpu, ...");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  Runtime& rt = owned(user, id);
  if (rt.state != "running")
    throw ApiError(409, "runtime " + id + " is " + rt.state + "; only a running runtime changes type");
  const std::string requested = body["type"];
  const std::vector<std::string> types = candidate_types(user, requested);
  const Accelerator* target = nullptr;
  if (types.front() != "cpu") {
    // The tier's GPU/TPU limit holds for a change of type as for a create (a pro user once held
    // both T4s by changing a cpu runtime's type).
    const TierPolicy& tier = tier_of(rt.tier);
    int others = 0;
    for (const auto& [other_id, other] : active_)
      others += other->user == rt.user && other_id != id && other->requested_type != "cpu";
    if (others >= tier.max_accelerated) {
      throw ApiError(429, "tier " + tier.name + " allows " + std::to_string(tier.max_accelerated) +
                              " GPU/TPU runtime(s) at a time; the runtime keeps its " + rt.type);
    }
    // Its own lease serves when it is of a wanted type (a change to the type it has, with the
    // machine's only one of them, once answered "none is free").
    if (const auto own = inventory_index_.find(rt.accelerator_id);
        own != inventory_index_.end() &&
        std::find(types.begin(), types.end(), inventory_[own->second].type) != types.end())
      target = &inventory_[own->second];
    if (!target) target = free_accelerator(types);
    if (!target) throw ApiError(503, "no " + join(types) + " is free; the runtime keeps its " + rt.type);
  }
  kill_worker(rt);
  const std::string from = rt.type;
  rt.requested_type = requested;
  // The lifetime runs from the runtime's creation: a change of type does not restart it (a
  // runtime switched t4 -> cpu -> t4 every few seconds never reached its maximum lifetime).
  const double created = rt.started_at;
  const bool warned = rt.warned_lifetime;
  start(rt, target);  // a new lease; the working directory and its files stay
  rt.started_at = created;
  rt.warned_lifetime = warned;
  save(rt);
  event(rt, "type_changed", from + " -> " + rt.type + "; files kept");
  process_queue();
  return to_json(rt);
}

Json RuntimeService::heartbeat(const User& user, const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Runtime& rt = owned(user, id);
  if (rt.state != "running") throw ApiError(409, "runtime " + id + " is " + rt.state);
  touch(rt);
  save(rt);
  return to_json(rt);
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

// ---- enforcement ---------------------------------------------------------------------------

void RuntimeService::tick() {
  std::lock_guard<std::mutex> lock(mutex_);
  const double now = now_seconds();
  std::vector<Job*> running;
  std::vector<Handle> handles;
  for (auto& [id, job] : jobs_) {
    if (job.state != "running") continue;
    running.push_back(&job);
    handles.push_back(job.handle);
  }
  const std::vector<JobStatus> statuses = executor_->poll_jobs(handles);  // one batch
  for (std::size_t i = 0; i < running.size(); ++i) {
    if (statuses[i].running) continue;
    Job& job = *running[i];
    const std::string& id = job.id;
    Runtime& rt = runtimes_.at(job.runtime_id);
    job.exit_code = statuses[i].exit_code;
    job.state = job.exit_code ? "exited" : "killed";
    job.ended_at = now;
    save(job);
    if (rt.state == "running") touch(rt);
    save(rt);
    event(rt, "job_finished",
          "job " + id + (job.exit_code ? " exited with " + std::to_string(*job.exit_code) : " was killed"));
  }
  for (auto it = runtimes_.begin(); it != runtimes_.end();) {
    // Ended runtimes leave memory after a while (the database keeps them), so a long-running
    // service stays flat.
    if (it->second.state == "terminated" && now - it->second.ended_at > config_.keep_terminated_s) {
      for (auto j = jobs_.begin(); j != jobs_.end();)
        j = j->second.runtime_id == it->first ? jobs_.erase(j) : std::next(j);
      it = runtimes_.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<Runtime*> with_worker;
  std::vector<Handle> workers;
  for (const auto& [id, rt] : active_) {
    if (rt->state == "running" && !rt->worker.empty()) {
      with_worker.push_back(rt);
      workers.push_back(rt->worker);
    }
  }
  const std::vector<bool> alive = executor_->workers_alive(workers);  // one batch
  for (std::size_t i = 0; i < with_worker.size(); ++i) {
    if (alive[i]) continue;
    with_worker[i]->pending_reason = "worker crashed";
    finish_termination(*with_worker[i]);
  }
  for (Runtime* active : active_runtimes()) {
    Runtime& rt = *active;
    const std::string& id = rt.id;
    if (rt.state == "terminating") {
      if (now >= rt.terminate_at) finish_termination(rt);
      continue;
    }
    if (rt.state != "running") continue;
    const TierPolicy& tier = tier_of(rt.tier);
    const bool job_running = std::any_of(jobs_.begin(), jobs_.end(), [&](const auto& e) {
      return e.second.runtime_id == id && e.second.state == "running";
    });
    // The idle clock runs while no job executes; without background execution it also runs
    // while jobs execute but no client sends heartbeats.
    const bool was_warned_idle = rt.warned_idle, was_warned_lifetime = rt.warned_lifetime;
    const double last_activity = rt.last_activity;
    if (job_running && rt.background) touch(rt);
    const double idle = now - rt.last_activity;
    const double age = now - rt.started_at;
    // Every end the service decides on gets the same grace as preemption: SIGTERM, time to
    // checkpoint, then SIGKILL (they once came in the same tick).
    if (idle >= tier.idle_timeout_s) {
      begin_termination(rt, "idle timeout", config_.preemption_grace_s);
      continue;
    }
    if (age >= tier.max_lifetime_s) {
      begin_termination(rt, "max lifetime", config_.preemption_grace_s);
      continue;
    }
    if (!rt.warned_idle && idle >= tier.idle_timeout_s - config_.warning_lead_s) {
      rt.warned_idle = true;
      event(rt, "warning",
            "idle for " + std::to_string(static_cast<int>(idle)) + " s; ends for idleness in " +
                std::to_string(static_cast<int>(tier.idle_timeout_s - idle)) + " s unless used");
    }
    if (!rt.warned_lifetime && age >= tier.max_lifetime_s - config_.warning_lead_s) {
      rt.warned_lifetime = true;
      event(rt, "warning",
            "reaches its maximum lifetime in " + std::to_string(static_cast<int>(tier.max_lifetime_s - age)) +
                " s; save your work");
    }
    if (rt.warned_idle != was_warned_idle || rt.warned_lifetime != was_warned_lifetime ||
        rt.last_activity - last_activity > 1.0) {
      save(rt);  // only what changed (and activity at most once a second per runtime)
    }
  }
  process_queue();
}

void RuntimeService::shutdown() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Runtime* rt : active_runtimes()) {
    rt->pending_reason = "service shutdown";
    finish_termination(*rt);
  }
}

}  // namespace accel::runtime
