// Executor: where a runtime's processes run. RuntimeService (admission, scheduling, limits,
// lifecycle) talks to this interface alone, holding the opaque handles it returns and storing
// them with the runtime, so a restarted service finds its processes again. LocalExecutor runs
// them on this machine, on accelerators the service leases; SlurmExecutor hands each runtime to
// a Slurm cluster, whose scheduler places it (places_runtimes(): docs/slurm.md).
#pragma once

#include <cstdint>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "accel/core/error.h"
#include "accel/runtime/service_config.h"  // JobLimits, RuntimeLimits

namespace accel::runtime {

using Environment = std::vector<std::pair<std::string, std::string>>;

// An executor's name for a worker or a job, stored as is and given back to it: "" is none.
using Handle = std::string;

// Whom a runtime's processes run as: a tenant's uid and gid, or (uid < 0) the service's own.
struct Identity {
  long long uid = -1, gid = -1;
  bool dropped() const { return uid >= 0; }
};

struct WorkerSpec {
  std::string runtime_id;
  std::string user, tier, type;  // for an executor that places runtimes itself (the type: "cpu", "t4")
  double time_limit_s = 0;       // the engine's own limit on the runtime's life (0: none)
  Identity who;
  std::string workdir;  // made by the executor, the tenant's alone
  Environment env;
  RuntimeLimits limits;  // for all of the runtime's processes together
};

struct JobSpec {
  Identity who;
  std::string workdir;
  std::vector<std::string> command;
  Environment env;
  // In the service's own folder: the job's output, and its exit status (128 + signal for a
  // signal) once it ends, written where a restarted service can read it.
  std::string output_path, exit_path;
  JobLimits limits;              // per process
  RuntimeLimits runtime_limits;  // the runtime's, for an executor that can bound them only per job
};

struct JobStatus {
  bool running = false;
  std::optional<int> exit_code;  // recorded once it ended by itself; none when it was killed
};

// A worker as its executor sees it. A local worker runs or has ended; a cluster's may wait for
// its engine to start it, and a preempted one may wait again (requeued).
struct WorkerStatus {
  enum class State { pending, running, ended };
  State state = State::ended;
  std::string reason;  // why it ended, where the engine says: "preempted", "max lifetime", "node failure"
  std::string detail;  // the engine's words: "slurm job 12 RUNNING on node1 (gres/gpu:t4:1)"
};

// The executor's engine did not answer (slurmctld down): nothing is known, so nothing may be
// concluded; the service keeps every record as it was and asks again on its next tick.
class ExecutorUnavailable : public Error {
 public:
  using Error::Error;
};

struct Usage {
  std::uint64_t memory_bytes = 0;  // resident memory of the runtime's processes
  std::uint64_t processes = 0;
  std::optional<double> cpu_seconds;  // where the executor counts it (a cgroup)
  std::vector<int> pids;              // this machine's processes of the runtime, where it has them
  // What the engine reports of the runtime's allocation (Slurm: job id, node, gres, sstat's
  // counters), shown by /resources as is.
  std::vector<std::pair<std::string, std::string>> allocation;
};

class Executor {
 public:
  virtual ~Executor() = default;

  // What confines a runtime here ("cgroup v1 (memory, pids, cpu)", or why only rlimits), for
  // the service's start-up line and the API's resources.
  virtual std::string confinement() const = 0;
  // Why a tenant's processes could not reach `path`, or "" (checked for the runtimes' folder).
  virtual std::string unreachable(const std::string& path) const = 0;

  // Whether the executor's engine decides where and when a runtime runs (Slurm): the service
  // then leases nothing itself and submits every runtime at once; its worker is `pending` until
  // the engine starts it. False: the service leases this machine's accelerators.
  virtual bool places_runtimes() const { return false; }

  // Starts (or submits) the runtime's worker. Throws ApiError when the engine refuses it (a QOS
  // limit), with the engine's reason.
  virtual Handle start_worker(const WorkerSpec& spec) = 0;
  virtual Handle start_job(const Handle& worker, const JobSpec& spec) = 0;
  // One call for many: each worker's status; each job's status. ExecutorUnavailable when the
  // engine cannot say.
  virtual std::vector<WorkerStatus> poll_workers(const std::vector<Handle>& workers) = 0;
  virtual std::vector<JobStatus> poll_jobs(const std::vector<Handle>& jobs) = 0;
  // A job adopted after a restart of the service: report its end as quickly as a new one's.
  virtual void watch_job(const Handle& job) = 0;
  // SIGTERM to every process of the runtime: its grace begins (jobs may checkpoint).
  virtual void terminate(const Handle& worker) = 0;
  // Ends every process of the runtime now and frees what the executor held for it.
  // `jobs_running`: whether the service knows of a job still running in it (false spares a
  // cluster's executor the search for job steps).
  virtual void kill(const Handle& worker, bool jobs_running) = 0;
  // Why a worker that ran waits again: "preempted" where the engine says so, else "requeued"
  // (a cluster's controller restarted from older state, an operator's requeue).
  virtual std::string requeue_reason(const Handle& /*worker*/) { return "requeued"; }
  // Ends the runtime's jobs now and keeps the worker (a restart that keeps a cluster's
  // allocation); false: the executor cannot, and the service kills the worker instead.
  // `jobs`: the handles of its jobs that the service knows to run.
  virtual bool end_jobs(const Handle& /*worker*/, const std::vector<Handle>& /*jobs*/) { return false; }
  virtual Usage usage(const Handle& worker) = 0;
  // Ends whatever still runs as `who` once they have no runtime left (processes that escaped
  // their runtime's group); returns how many.
  virtual int end_tenant(const Identity& who) = 0;
  // For events and logs: "worker 1234", "slurm job 77".
  virtual std::string describe(const Handle& handle) const = 0;

  // Workers to keep started and idle, for start_worker to hand out at once where the engine
  // starts them slowly (a cluster's scheduling pass): `count` of each spec, whose runtime fields
  // (id, user, workdir) are empty. Called once, after the service re-adopted its runtimes.
  virtual void keep_warm(const std::vector<std::pair<WorkerSpec, int>>& /*pools*/) {}
  // Whether start_worker handed out a worker that already runs (a warm one).
  virtual bool started_at_once(const Handle& /*worker*/) const { return false; }
  // Ends the workers an earlier run of this service left in the engine that no runtime holds
  // (`held`): a service killed between a delete and its cancel, or its warm ones. Returns how
  // many; ExecutorUnavailable when the engine cannot say.
  virtual int end_orphans(const std::vector<Handle>& /*held*/) { return 0; }
  // Lines for the service's /metrics (Prometheus text), such as the warm pools.
  virtual std::string metrics() const { return ""; }
};

}  // namespace accel::runtime
