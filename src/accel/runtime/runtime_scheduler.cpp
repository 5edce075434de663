// Admission and scheduling: which types a tier may ask for, the tier's concurrency limits,
// leasing a free accelerator, the queue by priority, preemption, and changes of type. Nothing
// here names an executor: a runtime's processes are the lifecycle's (runtime_lifecycle.cpp).
#include "accel/runtime/runtime_service.h"

#include <algorithm>
#include <cstdio>

#include "accel/hw/catalog.h"

namespace accel::runtime {

namespace {

bool holds_accelerator(const Runtime& rt) {
  return !rt.accelerator_id.empty() && (rt.state == "starting" || rt.state == "running" || rt.state == "terminating");
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

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
    // A real GPU's driver, and a TPU's PJRT runtime, map far more address space than RAM: the
    // tier's RAM cap (RLIMIT_AS) would stop them, so only their simulated stand-ins keep it.
    if (!a.simulated && (a.kind == "gpu" || !a.pjrt_plugin.empty())) limits.ram_gb = 0;
  }
  if (const auto mapped = config_.slurm.types.find(rt.type); executor_->places_runtimes() && rt.type != "cpu" &&
                                                             mapped != config_.slurm.types.end() &&
                                                             !mapped->second.simulated)
    limits.ram_gb = 0;  // a cluster's real GPU, likewise
  return limits;
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

Json RuntimeService::runtime_types(const User& user) {
  std::lock_guard<std::mutex> lock(mutex_);
  const TierPolicy& tier = tier_of(user.tier);
  Json out = Json::array();
  out.push_back({{"type", "cpu"}, {"kind", "cpu"}, {"allowed", true}, {"total", nullptr}, {"free", nullptr}});
  const std::vector<bool> leased = leased_accelerators();
  if (executor_->places_runtimes()) {  // the cluster's types; Slurm alone knows what is free
    for (const auto& [type, mapping] : config_.slurm.types) {
      const hw::AcceleratorSpec* spec = hw::find_catalog_type(type);
      if (!spec) continue;
      const bool allowed =
          std::find(tier.accelerator_types.begin(), tier.accelerator_types.end(), type) != tier.accelerator_types.end();
      out.push_back({{"type", std::string(spec->kind) + ":" + type},
                     {"kind", spec->kind},
                     {"name", spec->name},
                     {"memory_gb", spec->memory_gb},
                     {"best_for", spec->best_for},
                     {"allowed", allowed},
                     {"simulated", mapping.simulated},
                     {"total", nullptr},
                     {"free", nullptr}});
    }
    return {{"tier", tier.name}, {"types", out}};
  }
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

std::string RuntimeService::cluster_type(const std::vector<std::string>& types) const {
  for (const std::string& t : types)
    if (config_.slurm.types.count(t)) return t;
  std::vector<std::string> offered;
  for (const auto& [t, mapping] : config_.slurm.types) offered.push_back(t + (mapping.simulated ? " (simulated)" : ""));
  throw ApiError(503, "this service's Slurm cluster has no " + join(types) + " (it offers: " + join(offered) + ")");
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
  const bool cluster = executor_->places_runtimes();  // its scheduler queues, places and preempts
  if (cluster) rt.type = cluster_type(types);
  if (cluster || !accelerated || free_accelerator(types)) {
    Runtime& stored = runtimes_[rt.id] = rt;
    active_[rt.id] = &stored;
    save(stored);
    event(stored, "created", "requested " + requested);
    if (cluster)
      submit(stored);
    else
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
  }
  if (executor_->places_runtimes()) {
    // A new allocation of the new type from the cluster; the files stay (a shared file system).
    const std::string type = cluster_type(types);
    const std::string from = rt.type;
    kill_worker(rt);
    rt.requested_type = requested;
    rt.type = type;
    submit(rt);
    event(rt, "type_changed",
          from + " -> " + rt.type + "; files kept; " +
              (rt.state == "running" ? "on a warm allocation" : "waiting for Slurm to start it"));
    return to_json(rt);
  }
  if (types.front() != "cpu") {
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

}  // namespace accel::runtime
