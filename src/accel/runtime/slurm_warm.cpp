// SlurmExecutor's warm pools and its orphans (docs/slurm.md, "Warm allocations").
//
// A runtime on Slurm waits for the cluster's next scheduling pass (0.2-0.9 s on the idle test
// cluster, seconds on a busy one). A warm pool keeps `count` allocations of one tier and type
// started and idle; a create of that tier and type takes one at once, and the warmer submits its
// replacement. Each warm job is what the runtime's own would be (partition, gres, QOS, time
// limit, memory and CPUs), so nothing changes hands in Slurm but its name-bearing comment and its
// time limit, which the warmer extends by the time it stood idle. Warm jobs wait behind every
// real request (--nice), are recycled after warm_max_age_s, and leave with the service.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <sstream>

#include "accel/runtime/slurm_executor.h"

namespace accel::runtime {
namespace {

constexpr const char* kWarmPrefix = "warm-";
// Behind every waiting request: a warm job starts only on capacity no runtime asks for.
constexpr const char* kWarmNice = "--nice=1000000";
constexpr double kRefusedRetryS = 30;  // a pool Slurm refused is asked again after this

std::string pool_name(const WorkerSpec& spec) { return spec.tier + "/" + spec.type; }

std::string random_hex() {
  std::random_device random;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(random()));
  return hex;
}

double seconds_since(std::chrono::steady_clock::time_point then) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - then).count();
}

}  // namespace

void SlurmExecutor::keep_warm(const std::vector<std::pair<WorkerSpec, int>>& pools) {
  if (pools.empty() || warmer_.joinable()) return;
  warm_pools_ = pools;
  warmer_ = std::thread([this] { tend_warm(); });
}

bool SlurmExecutor::started_at_once(const Handle& worker) const {
  return job_name(worker).rfind(std::string("accel-") + kWarmPrefix, 0) == 0;
}

std::optional<Handle> SlurmExecutor::take_warm(const WorkerSpec& spec) {
  std::lock_guard<std::mutex> lock(warm_mutex_);
  auto taken = warm_.end();
  for (auto it = warm_.begin(); it != warm_.end(); ++it) {
    const WorkerSpec& pool = warm_pools_[it->pool].first;
    if (!it->started || pool.tier != spec.tier || pool.type != spec.type) continue;
    if (taken == warm_.end() || it->started_at < taken->started_at) taken = it;  // the oldest: it is recycled first
  }
  if (taken == warm_.end()) return std::nullopt;
  // Slurm counts its time limit from the start: the runtime gets its full one from now on.
  const double idle_s = seconds_since(taken->started_at) + config_.poll_s;
  adoptions_.push_back({tool("scontrol"), "update", "JobId=" + taken->id,
                        "TimeLimit=" + std::to_string(slurm::time_limit_minutes(spec.time_limit_s + idle_s)),
                        "Comment=accel " + tag_ + " runtime " + spec.runtime_id + " of " + spec.user});
  ++handed_out_[pool_name(spec)];
  const Handle handle = "slurm:" + taken->id + ":" + taken->name;
  warm_.erase(taken);
  warm_kick_ = true;
  warm_changed_.notify_all();
  return handle;
}

void SlurmExecutor::tend_warm() {
  std::vector<std::chrono::steady_clock::time_point> retry_at(warm_pools_.size());
  std::vector<std::string> said(warm_pools_.size());  // each pool's last refusal, said once
  std::string update_said;
  auto asked_at = std::chrono::steady_clock::time_point{};
  std::unique_lock<std::mutex> lock(warm_mutex_);
  while (!stopping_) {
    // Time limits and comments of the runtimes that took a warm job.
    std::vector<std::vector<std::string>> adoptions;
    adoptions.swap(adoptions_);
    lock.unlock();
    for (const auto& argv : adoptions) {
      const slurm::ToolResult updated = run(argv);
      const std::string why = updated.err.substr(0, updated.err.find('\n'));
      if (updated.status != 0 && why != update_said) {
        std::fprintf(stderr,
                     "accel serve: %s did not take effect (%s): a runtime on a warm allocation keeps the time limit "
                     "the allocation started with; the service's Slurm user must be an operator "
                     "(sacctmgr modify user NAME set AdminLevel=Operator) to extend it\n",
                     argv[2].c_str(), why.c_str());
        update_said = why;
      }
    }
    lock.lock();
    // Started: their beacons, a stat each.
    for (WarmWorker& w : warm_) {
      if (!w.started && std::filesystem::exists(beacons_ + "/" + w.name)) {
        w.started = true;
        w.started_at = std::chrono::steady_clock::now();
      }
    }
    // Ended or preempted (a warm job of a preemptible tier yields to real demand), from one
    // squeue call every status_s; recycled when idle for warm_max_age_s.
    std::vector<std::string> doomed;
    if (seconds_since(asked_at) >= config_.status_s && !warm_.empty()) {
      std::vector<std::string> ids;
      for (const WarmWorker& w : warm_) ids.push_back(w.id);
      lock.unlock();
      std::optional<std::map<std::string, slurm::QueuedJob>> queued;
      try {
        queued = queue(ids);
      } catch (const ExecutorUnavailable&) {
        // the runtimes' poll says so; the pools wait for it to answer
      }
      asked_at = std::chrono::steady_clock::now();
      lock.lock();
      for (auto it = warm_.begin(); queued && it != warm_.end();) {
        // Only the warmer adds warm jobs: every one here was asked for.
        const auto q = queued->find(it->id);
        const bool gone = q == queued->end();
        // A started one that waits again was preempted and requeued: it is no longer ready.
        const bool alive =
            !gone && (q->second.state == "RUNNING" ||
                      (!it->started && (q->second.state == "PENDING" || q->second.state == "CONFIGURING")));
        if (!alive) {
          if (!gone) doomed.push_back(it->id);
          it = warm_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto it = warm_.begin(); it != warm_.end();) {
      if (it->started && seconds_since(it->started_at) > config_.warm_max_age_s) {
        doomed.push_back(it->id);
        it = warm_.erase(it);
      } else {
        ++it;
      }
    }
    // Refill: each pool back to its count.
    for (std::size_t p = 0; p < warm_pools_.size() && !stopping_; ++p) {
      const auto& [spec, count] = warm_pools_[p];
      while (!stopping_ && std::chrono::steady_clock::now() >= retry_at[p] &&
             std::count_if(warm_.begin(), warm_.end(), [p](const WarmWorker& w) { return w.pool == p; }) < count) {
        const std::string name = kWarmPrefix + tag_ + "-" + random_hex();
        lock.unlock();
        const Submitted submitted = submit(spec, name, "accel " + tag_ + " warm " + pool_name(spec), {kWarmNice});
        lock.lock();
        if (!submitted.id) {
          retry_at[p] = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                               std::chrono::duration<double>(kRefusedRetryS));
          if (submitted.error != said[p])
            std::fprintf(stderr, "accel serve: warm pool %s: %s; asked again every %g s\n", pool_name(spec).c_str(),
                         submitted.error.c_str(), kRefusedRetryS);
          said[p] = submitted.error;
          break;
        }
        said[p].clear();
        warm_.push_back({*submitted.id, name, p, false, {}});
      }
    }
    if (!doomed.empty()) {
      std::lock_guard<std::mutex> pending(pending_mutex_);
      doomed_.insert(doomed_.end(), doomed.begin(), doomed.end());
      doomed_changed_.notify_all();
    }
    // Quick while a warm job waits to start (its beacon), else at squeue's pace.
    const bool waiting = std::any_of(warm_.begin(), warm_.end(), [](const WarmWorker& w) { return !w.started; });
    warm_changed_.wait_for(lock, std::chrono::duration<double>(waiting ? config_.poll_s : config_.status_s),
                           [this] { return stopping_.load() || warm_kick_; });
    warm_kick_ = false;
  }
}

int SlurmExecutor::end_orphans(const std::vector<Handle>& held) {
  std::set<std::string> kept;
  for (const Handle& worker : held) kept.insert(job_id(worker));
  const slurm::ToolResult listed =
      run({tool("squeue"), "--noheader", "--user=" + std::to_string(geteuid()), "--format=%i|%k"});
  if (listed.status != 0)
    throw ExecutorUnavailable("squeue did not answer: " + listed.err.substr(0, listed.err.find('\n')));
  // Only this service's: its mark opens the comment, which accel sets on every job it submits.
  const std::string mark = "accel " + tag_ + " ";
  std::vector<std::string> orphans;
  std::istringstream lines(listed.out);
  for (std::string line; std::getline(lines, line);) {
    const auto bar = line.find('|');
    if (bar == std::string::npos) continue;
    const std::string id = line.substr(0, bar);
    if (line.compare(bar + 1, mark.size(), mark) == 0 && !kept.count(id)) orphans.push_back(id);
  }
  cancel_now(orphans);
  return static_cast<int>(orphans.size());
}

std::string SlurmExecutor::metrics() const {
  if (warm_pools_.empty()) return "";
  std::lock_guard<std::mutex> lock(warm_mutex_);
  std::string out =
      "# HELP accel_slurm_warm_allocations Warm Slurm allocations kept for new runtimes: ready (started, idle) or "
      "waiting for the cluster to start them.\n# TYPE accel_slurm_warm_allocations gauge\n";
  std::string taken =
      "# HELP accel_slurm_warm_handed_out_total Runtimes that started on a warm allocation.\n"
      "# TYPE accel_slurm_warm_handed_out_total counter\n";
  for (std::size_t p = 0; p < warm_pools_.size(); ++p) {
    const WorkerSpec& spec = warm_pools_[p].first;
    int ready = 0, waiting = 0;
    for (const WarmWorker& w : warm_) {
      if (w.pool == p) ++(w.started ? ready : waiting);
    }
    const std::string labels = "tier=\"" + spec.tier + "\",type=\"" + spec.type + "\"";
    out += "accel_slurm_warm_allocations{" + labels + ",state=\"ready\"} " + std::to_string(ready) + "\n";
    out += "accel_slurm_warm_allocations{" + labels + ",state=\"waiting\"} " + std::to_string(waiting) + "\n";
    const auto n = handed_out_.find(pool_name(spec));
    taken += "accel_slurm_warm_handed_out_total{" + labels + "} " +
             std::to_string(n == handed_out_.end() ? 0 : n->second) + "\n";
  }
  return out + taken;
}

}  // namespace accel::runtime
