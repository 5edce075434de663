// Executor: where a runtime's processes run. RuntimeService (admission, scheduling, limits,
// lifecycle) talks to this interface alone, holding the opaque handles it returns and storing
// them with the runtime, so a restarted service finds its processes again. LocalExecutor runs
// them on this machine; a cluster's executor (Slurm) implements the same calls against its
// engine, with no change to the scheduler (docs/design.md).
#pragma once

#include <cstdint>

#include <optional>
#include <string>
#include <utility>
#include <vector>

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

struct Usage {
  std::uint64_t memory_bytes = 0;  // resident memory of the runtime's processes
  std::uint64_t processes = 0;
  std::optional<double> cpu_seconds;  // where the executor counts it (a cgroup)
  std::vector<int> pids;              // this machine's processes of the runtime, where it has them
};

class Executor {
 public:
  virtual ~Executor() = default;

  // What confines a runtime here ("cgroup v1 (memory, pids, cpu)", or why only rlimits), for
  // the service's start-up line and the API's resources.
  virtual std::string confinement() const = 0;
  // Why a tenant's processes could not reach `path`, or "" (checked for the runtimes' folder).
  virtual std::string unreachable(const std::string& path) const = 0;

  virtual Handle start_worker(const WorkerSpec& spec) = 0;
  virtual Handle start_job(const Handle& worker, const JobSpec& spec) = 0;
  // One call for many: whether each worker still runs; each job's status.
  virtual std::vector<bool> workers_alive(const std::vector<Handle>& workers) = 0;
  virtual std::vector<JobStatus> poll_jobs(const std::vector<Handle>& jobs) = 0;
  // A job adopted after a restart of the service: report its end as quickly as a new one's.
  virtual void watch_job(const Handle& job) = 0;
  // SIGTERM to every process of the runtime: its grace begins (jobs may checkpoint).
  virtual void terminate(const Handle& worker) = 0;
  // Ends every process of the runtime now and frees what the executor held for it.
  virtual void kill(const Handle& worker) = 0;
  virtual Usage usage(const Handle& worker) = 0;
  // Ends whatever still runs as `who` once they have no runtime left (processes that escaped
  // their runtime's group); returns how many.
  virtual int end_tenant(const Identity& who) = 0;
  // For events and logs: "worker 1234", "slurm job 77".
  virtual std::string describe(const Handle& handle) const = 0;
};

}  // namespace accel::runtime
