// SlurmExecutor's warm pools and its orphans (docs/slurm.md, "Warm allocations").
//
// A runtime on Slurm waits for the cluster's next scheduling pass (0.2-0.9 s on the idle test
// cluster, seconds on a busy one). A warm pool keeps `count` allocations of one tier and type
// started and idle; a create of that tier and type takes one at once, and the warmer submits its
// replacement. Each warm job is what the runtime's own would be (partition, gres, QOS, memory,
// CPUs, requeue) with two differences that the hand-out undoes: a time limit longer by the most
// it may stand idle, lowered at the hand-out to the tier's counted from then (a job's owner may
// lower its limit), and a nice value that keeps it behind every real request, set back to 0
// (which takes a Slurm operator). Warm jobs are recycled after warm_max_age_s and leave with
// the service.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "accel/core/error.h"
#include "accel/runtime/slurm_executor.h"

namespace accel::runtime {
namespace {

constexpr const char* kWarmPrefix = "warm-";
// Behind every waiting request: a warm job starts only on capacity no runtime asks for.
constexpr const char* kWarmNice = "--nice=1000000";
constexpr double kRefusedRetryS = 30;  // a pool Slurm refused is asked again after this
constexpr double kLimitMarginS = 120;  // the warmer looks every status_s: a warm job may outstay its age a little
constexpr double kStartMarginS = 10;   // Slurm's start of a warm job, before its beacon

std::string pool_name(const WorkerSpec& spec) { return spec.tier + "/" + spec.type; }

std::string random_hex(int digits) {
  std::random_device random;
  std::string out;
  while (static_cast<int>(out.size()) < digits) {
    char hex[9];
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(random()));
    out += hex;
  }
  return out.substr(0, digits);
}

double seconds_since(std::chrono::steady_clock::time_point then) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - then).count();
}

std::chrono::steady_clock::time_point steady_after(double seconds) {
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

std::string SlurmExecutor::service_id(const std::string& state_dir) {
  // Random, not derived from the path: two services with the same data dir path on two hosts
  // of one Slurm account must not take each other's jobs for orphans. Written whole or not at
  // all (a temporary file, synced, then linked into place), so a crash leaves no half an id.
  const std::string path = state_dir + "/service-id";
  const auto read = [&path] {
    std::string id;
    std::ifstream(path) >> id;
    return id;
  };
  if (!std::filesystem::exists(path)) {
    const std::string id = random_hex(12);
    const std::string temporary = path + ".new-" + id;
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    const bool written =
        fd >= 0 && ::write(fd, id.data(), id.size()) == static_cast<ssize_t>(id.size()) && ::fsync(fd) == 0;
    const int error = errno;
    if (fd >= 0) ::close(fd);
    const bool linked = written && (::link(temporary.c_str(), path.c_str()) == 0 || errno == EEXIST);
    const int link_error = errno;
    ::unlink(temporary.c_str());
    if (!written || !linked) {
      throw Error("executor slurm: cannot write " + path +
                  " (the service's id for its Slurm jobs): " + std::strerror(written ? link_error : error));
    }
    if (const int dir = ::open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
      ::fsync(dir);  // the name survives a power loss with the jobs that carry it
      ::close(dir);
    }
  }
  const std::string id = read();
  if (id.size() != 12 || id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    throw ValueError("executor slurm: " + path +
                     " is not a service id (12 hex digits); remove it only if no Slurm job of this service runs, "
                     "and the service makes a new one");
  }
  return id;
}

void SlurmExecutor::keep_warm(const std::vector<std::pair<WorkerSpec, int>>& pools) {
  std::lock_guard<std::mutex> lock(warm_mutex_);
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
    // Only one Slurm said runs lately (a preempted or ended one is dropped at the next look),
    // and that has its time limit's margin left.
    if (!it->started || pool.tier != spec.tier || pool.type != spec.type ||
        seconds_since(it->seen_at) > 3 * config_.status_s || seconds_since(it->started_at) > config_.warm_max_age_s)
      continue;
    if (taken == warm_.end() || it->started_at < taken->started_at) taken = it;  // the oldest: it is recycled first
  }
  if (taken == warm_.end()) return std::nullopt;
  // Slurm counts a time limit from the job's start: the runtime gets its tier's from now on. The
  // start is its beacon's time, a little after Slurm's (and clocks differ): a margin, well
  // inside the 2 minutes the warm job asked for more, keeps the new limit at or after the tier's.
  const double idle_s = seconds_since(taken->started_at) + kStartMarginS;
  const std::string job = "JobId=" + taken->id;
  const std::string scontrol = tool("scontrol");
  adoptions_.push_back(
      {scontrol, "update", job, "TimeLimit=" + std::to_string(slurm::time_limit_minutes(spec.time_limit_s + idle_s))});
  adoptions_.push_back({scontrol, "update", job, "Nice=0"});
  adoptions_.push_back(
      {scontrol, "update", job, "Comment=accel " + tag_ + " runtime " + spec.runtime_id + " of " + spec.user});
  ++handed_out_[pool_name(spec)];
  const Handle handle = "slurm:" + taken->id + ":" + taken->name;
  warm_.erase(taken);
  warm_kick_ = true;
  warm_changed_.notify_all();
  return handle;
}

void SlurmExecutor::adopt(const std::vector<std::vector<std::string>>& updates) {
  for (const auto& argv : updates) {
    const slurm::ToolResult updated = run(argv);
    if (updated.status == 0) continue;
    const std::string why = slurm::first_line(updated.err);
    // The runtime ended before its update came: nothing to set.
    if (why.find("Invalid job id") != std::string::npos || why.find("already completed") != std::string::npos) continue;
    std::string what = argv[2] + " " + argv[3];
    if (what.size() > 80) what = what.substr(0, 80) + "...";
    const bool denied = why.find("ccess") != std::string::npos || why.find("ermission") != std::string::npos;
    std::lock_guard<std::mutex> lock(warm_mutex_);
    if (why == update_said_) continue;
    update_said_ = why;
    std::fprintf(stderr, "accel serve: scontrol update %s of a warm allocation's hand-out failed: %s%s\n", what.c_str(),
                 why.c_str(),
                 denied ? " (Nice=0 takes a Slurm operator: sacctmgr modify user NAME set AdminLevel=Operator; "
                          "without it, a runtime on a warm allocation that is preempted and requeued waits behind "
                          "every other request)"
                        : "");
  }
}

void SlurmExecutor::tend_warm() {
  std::vector<std::chrono::steady_clock::time_point> retry_at(warm_pools_.size());
  std::vector<std::string> said(warm_pools_.size());  // each pool's last refusal, said once
  auto asked_at = std::chrono::steady_clock::time_point{};
  std::unique_lock<std::mutex> lock(warm_mutex_);
  while (!stopping_) {
    std::vector<std::vector<std::string>> adoptions;
    adoptions.swap(adoptions_);
    std::vector<std::pair<std::string, std::string>> unstarted;  // id, name
    for (const WarmWorker& w : warm_)
      if (!w.started) unstarted.emplace_back(w.id, w.name);
    const bool ask = seconds_since(asked_at) >= config_.status_s && !warm_.empty();
    std::vector<std::string> ids;
    for (const WarmWorker& w : warm_) ids.push_back(w.id);
    lock.unlock();

    // Off the lock (a create waits for it under the service's): the hand-outs' updates, the
    // beacons (a shared file system may stall) and squeue.
    adopt(adoptions);
    std::map<std::string, std::chrono::steady_clock::time_point> started;
    for (const auto& [id, name] : unstarted) {
      std::error_code ec;
      const auto written = std::filesystem::last_write_time(beacons_ + "/" + name, ec);
      if (ec) continue;
      const double ago = std::chrono::duration<double>(std::filesystem::file_time_type::clock::now() - written).count();
      started[id] = steady_after(-std::max(0.0, ago));  // its start, not when it was noticed
    }
    std::optional<std::map<std::string, slurm::QueuedJob>> queued;
    if (ask) {
      try {
        queued = queue(ids);
      } catch (const ExecutorUnavailable&) {
        // the runtimes' poll says so; meanwhile no warm job is seen, so none is handed out
      }
      asked_at = std::chrono::steady_clock::now();
    }

    lock.lock();
    std::vector<WarmWorker> dropped;  // to cancel: squeue last listed them under their own name
    const auto now = std::chrono::steady_clock::now();
    for (auto it = warm_.begin(); it != warm_.end();) {
      if (const auto s = started.find(it->id); s != started.end() && !it->started) {
        it->started = true;
        it->started_at = s->second;
        it->seen_at = now;
      }
      bool keep = true, listed = true;
      if (queued && std::find(ids.begin(), ids.end(), it->id) != ids.end()) {
        const auto q = queued->find(it->id);
        // Gone, or the id is another job's now (a controller that lost its state hands ids out
        // again): nothing of this warm job to cancel.
        listed = q != queued->end() && q->second.name == "accel-" + it->name;
        const std::string state = listed ? q->second.state : "";
        if (state == "RUNNING") {
          if (it->started) it->seen_at = now;
          if (!it->started && seconds_since(it->submitted_at) > 30 && !it->unseen_said) {
            std::fprintf(stderr,
                         "accel serve: warm allocation %s runs in Slurm but its start beacon never appeared in %s: the "
                         "data dir must be on a file system the nodes share (docs/slurm.md)\n",
                         it->id.c_str(), beacons_.c_str());
            it->unseen_said = true;
          }
        }
        // Ended, or (started before) waiting again: a preempted job requeued is no longer ready.
        keep = state == "RUNNING" || (!it->started && (state == "PENDING" || state == "CONFIGURING"));
      }
      // Its limit runs while it waits; one that never shows its beacon is no use either.
      const double age = it->started ? seconds_since(it->started_at) : seconds_since(it->submitted_at);
      if (age > config_.warm_max_age_s && (it->started || it->unseen_said)) keep = false;
      if (keep) {
        ++it;
      } else {
        if (listed) dropped.push_back(*it);
        it = warm_.erase(it);
      }
    }
    // Refill: each pool back to its count.
    for (std::size_t p = 0; p < warm_pools_.size() && !stopping_; ++p) {
      const auto& [spec, count] = warm_pools_[p];
      while (!stopping_ && std::chrono::steady_clock::now() >= retry_at[p] &&
             std::count_if(warm_.begin(), warm_.end(), [p](const WarmWorker& w) { return w.pool == p; }) < count) {
        const std::string name = kWarmPrefix + tag_ + "-" + random_hex(8);
        WorkerSpec warm = spec;
        warm.time_limit_s += config_.warm_max_age_s + kLimitMarginS;  // lowered at the hand-out
        lock.unlock();
        const Submitted submitted = submit(warm, name, "accel " + tag_ + " warm " + pool_name(spec), {kWarmNice});
        lock.lock();
        if (!submitted.id) {
          retry_at[p] = steady_after(kRefusedRetryS);
          if (submitted.error != said[p]) {
            std::fprintf(stderr,
                         "accel serve: warm pool %s: %s (a warm job asks for the tier's time limit plus "
                         "warm_max_age_s and 2 minutes: the QOS's MaxWall must allow it); asked again every %g s\n",
                         pool_name(spec).c_str(), submitted.error.c_str(), kRefusedRetryS);
          }
          said[p] = submitted.error;
          break;
        }
        said[p].clear();
        warm_.push_back({*submitted.id, name, p, false, std::chrono::steady_clock::now(), {}, {}, false});
      }
    }
    if (!dropped.empty()) {
      lock.unlock();
      std::error_code ec;
      for (const WarmWorker& w : dropped) std::filesystem::remove(beacons_ + "/" + w.name, ec);
      {
        std::lock_guard<std::mutex> pending(pending_mutex_);
        for (const WarmWorker& w : dropped) doomed_.push_back(w.id);
      }
      doomed_changed_.notify_all();
      lock.lock();
    }
    // Quick while a warm job waits to start (its beacon), else at squeue's pace.
    const bool waiting = std::any_of(warm_.begin(), warm_.end(), [](const WarmWorker& w) { return !w.started; });
    warm_changed_.wait_for(lock, std::chrono::duration<double>(waiting ? config_.poll_s : config_.status_s),
                           [this] { return stopping_.load() || warm_kick_; });
    warm_kick_ = false;
  }
  // The last hand-outs' updates still go out: their runtimes live on after the service.
  std::vector<std::vector<std::string>> adoptions;
  adoptions.swap(adoptions_);
  lock.unlock();
  adopt(adoptions);
}

int SlurmExecutor::end_orphans(const std::vector<Handle>& held) {
  std::set<std::string> kept, held_names;
  for (const Handle& worker : held) {
    kept.insert(job_id(worker));
    held_names.insert(job_name(worker));
  }
  const slurm::ToolResult listed =
      run({tool("squeue"), "--noheader", "--user=" + std::to_string(geteuid()), "--format=%i|%j|%k"});
  if (listed.status != 0) throw ExecutorUnavailable("squeue did not answer: " + slurm::first_line(listed.err));
  // Only this service's: its id opens the comment, which accel sets on every job it submits.
  const std::string mark = "accel " + tag_ + " ";
  std::vector<std::string> orphans;
  std::istringstream lines(listed.out);
  std::error_code ec;
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string field; f.size() < 2 && std::getline(fields, field, '|');) f.push_back(field);
    std::string comment;
    std::getline(fields, comment);  // the rest: a comment may hold a '|'
    if (f.size() < 2 || comment.compare(0, mark.size(), mark) != 0 || kept.count(f[0])) continue;
    orphans.push_back(f[0]);
    // Its beacon goes too: a name of accel's own (accel-<runtime id>, accel-warm-...), unless a
    // held runtime's job has the same (a runtime submitted again after a change of type).
    const std::string name = f[1].rfind("accel-", 0) == 0 ? f[1].substr(6) : "";
    const bool plain = !name.empty() && name.find_first_not_of(
                                            "abcdefghijklmnopqrstuvwxyz"
                                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == std::string::npos;
    if (plain && !held_names.count("accel-" + name)) std::filesystem::remove(beacons_ + "/" + name, ec);
  }
  cancel_now(orphans);
  return static_cast<int>(orphans.size());
}

std::string SlurmExecutor::metrics() const {
  std::lock_guard<std::mutex> lock(warm_mutex_);
  if (warm_pools_.empty()) return "";
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
