// The lifecycle of a runtime through the Executor: its worker with the first job, the ends
// (SIGTERM, grace, SIGKILL: idle, lifetime, preemption, delete, a crashed worker, shutdown),
// restart, and the tick that enforces the limits.
#include "accel/runtime/runtime_service.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include "accel/core/exit_codes.h"

namespace accel::runtime {
namespace fs = std::filesystem;

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

WorkerSpec RuntimeService::worker_template(const std::string& tier_name, const std::string& type) const {
  const TierPolicy& tier = tier_of(tier_name);
  WorkerSpec spec;
  spec.tier = tier_name;
  spec.type = type;
  // A cluster's own limit is the backstop: accel ends the runtime at its maximum lifetime, after
  // its warning and with its grace; the engine's checks are coarse (Slurm's every ~30 s), hence
  // the minute more.
  spec.time_limit_s = tier.max_lifetime_s + config_.preemption_grace_s + 60;
  spec.limits = tier.runtime_limits;
  return spec;
}

WorkerSpec RuntimeService::worker_spec(const Runtime& rt) {
  WorkerSpec spec = worker_template(rt.tier, rt.type);
  spec.runtime_id = rt.id;
  spec.user = rt.user;
  spec.who = identity_of(rt.user);
  spec.workdir = rt.workdir;
  spec.env = lease_environment(rt);
  return spec;
}

void RuntimeService::ensure_worker(Runtime& rt) {
  if (!rt.worker.empty()) return;
  // The working directory comes with the first job (run_job makes job_dir).
  rt.worker = executor_->start_worker(worker_spec(rt));
  save(rt);
  event(rt, "worker_started", "worker " + executor_->describe(rt.worker));
}

void RuntimeService::submit(Runtime& rt) {
  rt.workdir = data_dir_ + "/runtimes/" + rt.id;
  rt.accelerator_id.clear();
  rt.worker.clear();
  rt.state = "starting";
  try {
    rt.worker = executor_->start_worker(worker_spec(rt));
  } catch (const std::exception& e) {
    rt.pending_reason = "refused by the cluster";
    event(rt, "refused", e.what());
    finish_termination(rt);
    throw;
  }
  save(rt);
  if (!executor_->started_at_once(rt.worker)) {
    event(rt, "submitted", executor_->describe(rt.worker) + ": waiting for the cluster to start it");
    return;
  }
  // A warm allocation runs already: the create answers "running", as on this machine.
  event(rt, "submitted", executor_->describe(rt.worker) + ": a warm allocation, already started, taken at once");
  WorkerStatus started;
  started.state = WorkerStatus::State::running;
  started.detail = executor_->describe(rt.worker) + " (a warm allocation)";
  worker_started(rt, started);
}

void RuntimeService::worker_started(Runtime& rt, const WorkerStatus& status) {
  const double previous_start = rt.started_at;
  rt.state = "running";
  rt.started_at = now_seconds();
  rt.last_activity = rt.started_at;
  rt.warned_idle = rt.warned_lifetime = false;
  save(rt);
  event(rt, "started", status.detail);
  if (previous_start <= 0) return;
  // Back after a preemption: the jobs that stopped at its SIGTERM with a checkpoint (exit 75,
  // `accel train --checkpoint-dir D --resume`) run again, and carry on from it.
  std::vector<std::pair<std::string, std::vector<std::string>>> reruns;
  for (const auto& [id, job] : jobs_) {
    if (job.runtime_id == rt.id && job.state == "exited" && job.exit_code == kExitCheckpointed &&
        job.ended_at >= previous_start)
      reruns.emplace_back(id, job.command);
  }
  for (const auto& [id, command] : reruns) {
    try {
      const Job& again = launch_job(rt, command);
      event(rt, "job_resumed",
            "job " + again.id + " runs job " + id +
                "'s command again: it stopped at a checkpoint when the runtime was preempted");
    } catch (const std::exception& e) {
      event(rt, "job_resume_failed", "job " + id + " could not start again: " + e.what());
    }
  }
  save(rt);
}

void RuntimeService::worker_requeued(Runtime& rt, const WorkerStatus& status) {
  rt.state = "starting";
  rt.reason = executor_->requeue_reason(rt.worker);
  save(rt);
  event(rt, rt.reason,
        (rt.reason == "preempted" ? "the cluster preempted the runtime's allocation (SIGTERM, then its grace) and "
                                    "requeued it ("
                                  : "the cluster requeued the runtime's allocation (") +
            status.detail +
            "); it runs again when the cluster has room, and jobs that stopped at a checkpoint (exit 75) start again "
            "then");
}

bool RuntimeService::has_running_job(const Runtime& rt) const {
  return std::any_of(jobs_.begin(), jobs_.end(), [&rt](const auto& entry) {
    return entry.second.runtime_id == rt.id && entry.second.state == "running";
  });
}

void RuntimeService::begin_termination(Runtime& rt, const std::string& reason, double grace_s) {
  if (rt.state == "queued" || rt.state == "starting") {  // nothing of it runs yet
    rt.pending_reason = reason;
    finish_termination(rt);
    return;
  }
  rt.pending_reason = reason;
  // Nothing runs, nothing to wait for. A cluster's worker only holds the allocation: without a
  // running job the grace would only keep its GPU from the next runtime in Slurm's queue.
  const bool jobs_running = has_running_job(rt);
  if (rt.worker.empty() || (executor_->places_runtimes() && !jobs_running)) {
    finish_termination(rt);
    return;
  }
  rt.state = "terminating";
  rt.terminate_at = now_seconds() + grace_s;
  executor_->terminate(rt.worker);  // jobs may checkpoint
  save(rt);
  char grace[48];
  std::snprintf(grace, sizeof grace, ", SIGKILL in %g s", grace_s);
  event(rt, "terminating", reason + ": SIGTERM sent" + (grace_s > 0 ? grace : ""));
  if (grace_s <= 0) finish_termination(rt);
}

void RuntimeService::kill_worker(Runtime& rt) {
  if (rt.worker.empty()) return;
  const bool jobs_running = has_running_job(rt);
  executor_->kill(rt.worker, jobs_running);
  record_job_ends(rt);
  rt.worker.clear();
}

void RuntimeService::record_job_ends(Runtime& rt) {
  std::vector<Job*> running;
  std::vector<Handle> handles;
  for (auto& [id, job] : jobs_) {
    if (job.runtime_id != rt.id || job.state != "running") continue;
    running.push_back(&job);
    handles.push_back(job.handle);
  }
  // A job that ended before the kill has its status on file; one the kill ended has not, and
  // its status is the signal's, as a shell reports it.
  const std::vector<JobStatus> statuses = executor_->poll_jobs(handles);
  const double now = now_seconds();
  for (std::size_t i = 0; i < running.size(); ++i) record_job_end(rt, *running[i], statuses[i], 128 + SIGKILL, now);
}

void RuntimeService::record_job_end(Runtime& rt, Job& job, const JobStatus& status, std::optional<int> killed_code,
                                    double now) {
  job.state = status.exit_code ? "exited" : "killed";
  job.exit_code = status.exit_code ? status.exit_code : killed_code;
  job.ended_at = now;
  save(job);
  // The event is written whichever path saw the end (the tick, or a kill that found the job
  // already gone), so a checkpointed job always tells its owner to resume.
  const bool checkpointed = status.exit_code == kExitCheckpointed;
  event(rt, "job_finished",
        "job " + job.id + (status.exit_code ? " exited with " + std::to_string(*status.exit_code) : " was killed") +
            (checkpointed ? " (stopped at SIGTERM after writing a checkpoint: run it again with --resume)" : ""));
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
  if (rt.deleted) discard_files(rt);
}

void RuntimeService::touch(Runtime& rt) {
  rt.last_activity = now_seconds();
  rt.warned_idle = false;
}

Runtime RuntimeService::remove_runtime(const User& user, const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Runtime& rt = owned(user, id);
  // Deleted means gone from the API (404 from now on, also for its jobs and events); the
  // database keeps the record, marked, for the operator. Its processes get SIGTERM and
  // delete_grace_s to checkpoint (their files go once they have ended), like every other end.
  rt.deleted = true;
  if (rt.state != "terminated") {
    begin_termination(rt, "user", config_.delete_grace_s);
  } else {
    discard_files(rt);
  }
  save(rt);
  process_queue();
  return rt;
}

void RuntimeService::discard_files(const Runtime& rt) {
  // Not under the lock (nor inside the combiner's batch): a runtime with 200k files made every
  // other user's requests wait seconds. Its folders are renamed into the trash at once and
  // emptied by a thread of their own.
  std::vector<std::string> doomed;
  for (const std::string& path : {rt.workdir, job_dir(rt)}) {
    if (path.empty() || !fs::exists(path)) continue;
    const std::string to = data_dir_ + "/trash/" + rt.id + (path == rt.workdir ? "-files" : "-jobs");
    std::error_code ec;
    fs::rename(path, to, ec);
    doomed.push_back(ec ? path : to);  // another file system: deleted where it is, still off the lock
  }
  empty_trash(std::move(doomed));
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
  // Same lease, same files; fresh processes from the next job on. A cluster's allocation stays
  // (a new one would wait in its queue again): only the jobs end.
  std::vector<Handle> running;
  for (const auto& [job_id, job] : jobs_)
    if (job.runtime_id == rt.id && job.state == "running") running.push_back(job.handle);
  const bool kept = !rt.worker.empty() && executor_->end_jobs(rt.worker, running);
  if (kept)
    record_job_ends(rt);
  else
    kill_worker(rt);
  touch(rt);
  save(rt);
  event(rt, "restarted",
        kept ? "jobs killed; the allocation and the files kept"
             : "worker and jobs killed; files kept; a new worker starts with the next job");
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
  std::set<std::string> busy;                                             // runtimes with a job still running
  for (std::size_t i = 0; i < running.size(); ++i) {
    if (statuses[i].running) {
      busy.insert(running[i]->runtime_id);
      continue;
    }
    Runtime& rt = runtimes_.at(running[i]->runtime_id);
    if (rt.state == "running") touch(rt);
    save(rt);
    record_job_end(rt, *running[i], statuses[i], std::nullopt, now);
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
    if ((rt->state == "running" || rt->state == "starting" || rt->state == "terminating") && !rt->worker.empty()) {
      with_worker.push_back(rt);
      workers.push_back(rt->worker);
    }
  }
  std::vector<WorkerStatus> worker_statuses;
  try {
    worker_statuses = executor_->poll_workers(workers);  // one batch
    if (!executor_error_.empty()) std::fprintf(stderr, "accel serve: the executor answers again\n");
    executor_error_.clear();
  } catch (const ExecutorUnavailable& e) {
    // Nothing is known, so nothing is concluded (a down slurmctld ends no runtime): the records
    // stay as they are until it answers.
    if (executor_error_ != e.what()) std::fprintf(stderr, "accel serve: %s; runtimes are kept as they are\n", e.what());
    executor_error_ = e.what();
    with_worker.clear();
  }
  for (std::size_t i = 0; i < with_worker.size(); ++i) {
    Runtime& rt = *with_worker[i];
    const WorkerStatus& status = worker_statuses[i];
    if (status.state == WorkerStatus::State::pending) {
      if (rt.state == "running") worker_requeued(rt, status);
    } else if (status.state == WorkerStatus::State::running) {
      if (rt.state == "starting") worker_started(rt, status);
    } else if (rt.state == "running" || rt.state == "starting") {
      rt.pending_reason = status.reason.empty() ? "worker crashed" : status.reason;
      if (!status.detail.empty()) event(rt, "worker_ended", status.detail);
      finish_termination(rt);
    } else if (!busy.count(rt.id)) {
      finish_termination(rt);  // everything ended within its grace: no need to wait it out
    }
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
    const bool job_running = busy.count(id) > 0;
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
