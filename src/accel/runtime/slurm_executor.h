// SlurmExecutor: each runtime is a job of a Slurm cluster (docs/slurm.md). Its worker is a batch
// job that only holds the allocation (it sleeps, ignoring SIGTERM, so the grace that Slurm or
// accel gives belongs to the jobs); each of the runtime's jobs is a step in that allocation,
// started with `srun --overlap` from a local process the service watches, running accel's job
// monitor on the node (limits, the tenant's uid, the exit file). Slurm places runtimes (partition,
// gres, QOS), preempts them and enforces its time limit; accel keeps users, tiers, idle
// timeouts, the records and the API.
//
// Handles: a worker is "slurm:<job id>:<runtime id>", its job named "accel-<runtime id>": a
// controller that crashed hands out ids again, and a name that differs is another job, never
// polled or cancelled as this one. A job is its local srun process's handle, as
// LocalExecutor writes it, so its status and exit survive a restart of the service.
//
// Statuses come from one squeue call for all runtimes, at most every status_s: each squeue has
// slurmctld pack every job it remembers, and at a start per runtime it was slurmctld's CPU that
// bounded the starts (bench/slurm_bench.py). A start is seen sooner: the worker's first act is
// to write a start beacon, <state dir>/started/<runtime id>, which a poller looks for every
// poll_s while runtimes wait, waking the service when one appears. The state dir must be on a
// file system the nodes share with the service, like the runtimes' folders (docs/slurm.md).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "accel/runtime/local_executor.h"
#include "accel/runtime/slurm_cli.h"

namespace accel::runtime {

class SlurmExecutor final : public Executor {
 public:
  // `isolating`, `monitor`: as LocalExecutor's. `on_change` is called (on a thread of the
  // executor's) when a job ends or a waiting runtime starts. Throws ValueError when a Slurm tool
  // is missing.
  SlurmExecutor(SlurmConfig config, bool isolating, std::string monitor, std::string state_dir,
                std::function<void()> on_change);
  ~SlurmExecutor() override;

  std::string confinement() const override;
  std::string unreachable(const std::string& path) const override { return local_.unreachable(path); }
  bool places_runtimes() const override { return true; }
  Handle start_worker(const WorkerSpec& spec) override;
  Handle start_job(const Handle& worker, const JobSpec& spec) override;
  std::vector<WorkerStatus> poll_workers(const std::vector<Handle>& workers) override;
  std::vector<JobStatus> poll_jobs(const std::vector<Handle>& jobs) override { return local_.poll_jobs(jobs); }
  void watch_job(const Handle& job) override { local_.watch_job(job); }
  void terminate(const Handle& worker) override;
  void kill(const Handle& worker, bool jobs_running) override;
  bool end_jobs(const Handle& worker, const std::vector<Handle>& jobs) override;
  std::string requeue_reason(const Handle& worker) override;
  Usage usage(const Handle& worker) override;
  int end_tenant(const Identity& who) override { return local_.end_tenant(who); }
  std::string describe(const Handle& handle) const override;
  void keep_warm(const std::vector<std::pair<WorkerSpec, int>>& pools) override;
  bool started_at_once(const Handle& worker) const override;
  int end_orphans(const std::vector<Handle>& held) override;
  std::string metrics() const override;

  // "slurm:<id>:<runtime>" -> "<id>"; "" for a handle of another executor.
  static std::string job_id(const Handle& handle);
  // The Slurm job's name: "accel-<runtime id>".
  static std::string job_name(const Handle& handle);
  // A job's step in the allocation is named "accel-job-<its exit file's name>": unique, so a
  // step is found again by name.
  static std::string step_name(const std::string& exit_path);

 private:
  // A warm allocation (slurm_warm.cpp): started, idle, kept for the next runtime of its pool.
  struct WarmWorker {
    std::string id, name;  // Slurm job id; the job is accel-<name>, its beacon <beacons>/<name>
    std::size_t pool = 0;  // index in warm_pools_
    bool started = false;
    std::chrono::steady_clock::time_point submitted_at;
    std::chrono::steady_clock::time_point started_at;  // when Slurm started it (its beacon's time)
    std::chrono::steady_clock::time_point seen_at;     // when squeue (or its beacon) last said it runs
    bool unseen_said = false;                          // running without a beacon: said once
  };
  struct Submitted {
    std::optional<std::string> id;
    std::string error;  // Slurm's refusal, with what was asked for
  };

  std::string tool(const char* name) const { return bin_dir_ + "/" + name; }
  // sbatch of a worker for `spec`, named accel-<name>, writing its beacon <beacons>/<name>.
  Submitted submit(const WorkerSpec& spec, const std::string& name, const std::string& comment,
                   const std::vector<std::string>& extra = {});
  void cancel_now(const std::vector<std::string>& ids);  // the canceller's two calls, here and now
  // Ends the allocation's steps but its batch and extern steps (only those named in `only`, when
  // given). ExecutorUnavailable when squeue fails.
  void end_steps(const std::string& id, const std::string& name, const std::set<std::string>* only = nullptr);
  std::optional<Handle> take_warm(const WorkerSpec& spec);           // a started warm worker of the spec's pool
  void tend_warm();                                                  // the warmer's loop: refill, recycle, adopt
  void adopt(const std::vector<std::vector<std::string>>& updates);  // the hand-outs' scontrol calls
  // This service's id, made once in its state folder: the mark in its jobs' comments.
  static std::string service_id(const std::string& state_dir);
  slurm::ToolResult run(std::vector<std::string> argv) const;
  // squeue for these job ids, one call; ExecutorUnavailable when slurmctld does not answer.
  std::map<std::string, slurm::QueuedJob> queue(const std::vector<std::string>& ids) const;
  std::string beacon(const Handle& worker) const;  // "" for a handle of another executor
  // Whether the worker's beacon exists and was written at or after `since` (a requeued job's
  // beacon from its earlier run is older than a squeue answer that says it waits).
  bool started_since(const Handle& worker, std::filesystem::file_time_type since) const;
  void poll_pending();   // the poller's loop
  void cancel_doomed();  // the canceller's loop

  SlurmConfig config_;
  std::string bin_dir_;
  std::string beacons_;  // <state dir>/started
  LocalExecutor local_;  // the srun processes of jobs run on this machine, watched as local jobs
  std::function<void()> on_change_;
  std::string confinement_;
  std::mutex pending_mutex_;
  std::condition_variable pending_changed_;
  std::map<std::string, Handle> pending_;  // job id -> worker, for jobs waiting for Slurm to start them
  // squeue's last answer: the ids asked for, what it said, and when it was asked.
  std::set<std::string> last_ids_;
  std::map<std::string, slurm::QueuedJob> last_;
  std::chrono::steady_clock::time_point last_at_;
  std::filesystem::file_time_type last_file_time_;
  std::set<std::string> lost_;  // ids the controller gave to other jobs: never signalled
  // Workers to end, collected while the canceller runs its last calls: two calls of scancel for
  // all of them, off the service's lock (under load, one call per delete held it 10-20 ms each).
  std::vector<std::string> doomed_;
  std::condition_variable doomed_changed_;
  // Jobs a restart ended whose srun may still be asking for its step. Killing such an srun can
  // leave a step with no task, which no scancel ends (the controller waits for a node to report
  // it done, and no node runs it): listed until the allocation ends. So their sruns end with
  // their steps instead: the canceller cancels each step, by name, once it shows (every 100 ms)
  // until its srun has ended; SIGKILL to an srun still there after 30 s (a controller gone).
  struct EndingJobs {
    std::string id, name;  // the allocation's Slurm job id and name (scancel's guard)
    std::vector<LocalExecutor::Process> sruns;
    std::set<std::string> steps;  // their step names
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<EndingJobs> ending_;
  bool finish_ending(EndingJobs& jobs);  // true when every srun of them has ended
  std::atomic<bool> stopping_{false};
  std::thread poller_;
  std::thread canceller_;
  std::string tag_;  // this service's mark in its jobs' comments ("accel <tag> ..."): service_id()
  // The warm pools: what to keep, what is kept, and the hand-outs whose time limit and comment
  // the warmer still has to set (scontrol, off the service's lock).
  std::vector<std::pair<WorkerSpec, int>> warm_pools_;
  mutable std::mutex warm_mutex_;
  std::condition_variable warm_changed_;
  bool warm_kick_ = false;
  std::vector<WarmWorker> warm_;
  std::vector<std::vector<std::string>> adoptions_;
  std::string update_said_;                        // the last scontrol refusal logged, said once
  std::map<std::string, std::size_t> handed_out_;  // "tier/type" -> runtimes started on a warm worker
  std::thread warmer_;
};

}  // namespace accel::runtime
