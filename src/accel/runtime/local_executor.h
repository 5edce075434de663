// LocalExecutor: runtimes as local process groups. A runtime's worker is the leader of its own
// process group (so one signal reaches every job of the runtime); each job runs under a small
// monitor process in that group which records the job's exit status in a file, so the status
// survives a restart of the daemon. When the service runs as root, workers and jobs run as
// their tenant's own unprivileged uid (RuntimeService picks it), with core dumps off, so one
// tenant can neither read another's files nor signal their processes; each runtime's processes
// are in a cgroup of their own where the machine allows it (RuntimeCgroups), else limited by
// rlimits alone (confinement() says which, and why).
//
// Handles: a worker is "<pid>:<start time>:<runtime id>", a job "<pid>:<start time>:<exit
// file>". A process is its PID and its start time (clock ticks since boot, /proc/PID/stat):
// after a restart of the service a stored PID may belong to an unrelated process.
#pragma once

#include <cstdint>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "accel/runtime/executor.h"
#include "accel/runtime/exit_watcher.h"
#include "accel/runtime/runtime_cgroups.h"

namespace accel::runtime {

class LocalExecutor final : public Executor {
 public:
  // `isolating`: the service runs as root and gives each tenant a uid of their own (false: jobs
  // run as the service's user). `monitor`: the accel executable that runs job monitors ("" =
  // this process's executable). `cgroup_name`: this service's folder in the machine's cgroup
  // hierarchies (unique among the services on the machine); "" makes no cgroups (a service that
  // is not root, or use_cgroups false in the service config). `on_exit`
  // is called (on a thread of the executor's) soon after a job ends.
  LocalExecutor(bool isolating, std::string monitor, const std::string& cgroup_name, std::function<void()> on_exit);
  ~LocalExecutor() override;

  std::string confinement() const override;
  std::string unreachable(const std::string& path) const override;
  Handle start_worker(const WorkerSpec& spec) override;
  Handle start_job(const Handle& worker, const JobSpec& spec) override;
  std::vector<WorkerStatus> poll_workers(const std::vector<Handle>& workers) override;
  std::vector<JobStatus> poll_jobs(const std::vector<Handle>& jobs) override;
  void watch_job(const Handle& job) override;
  void terminate(const Handle& worker) override;
  void kill(const Handle& worker, bool jobs_running) override;
  Usage usage(const Handle& worker) override;
  int end_tenant(const Identity& who) override;
  std::string describe(const Handle& handle) const override;

  // Gives `path` (a runtime's working directory) to `who`, mode 0700: no other tenant may list,
  // read or write it.
  void hand_over(const std::string& path, const Identity& who) const;
  // Jobs' PATH: the system's folders, and this accel's when tenants can reach it.
  const std::string& job_path() const { return job_path_; }
  const std::string& monitor() const { return monitor_; }

  struct Process {
    int pid = 0;
    std::uint64_t start = 0;
    std::string detail;  // a worker's runtime id, a job's exit file
  };
  static Handle handle_of(const Process& process);
  static Process parse(const Handle& handle);  // pid 0 for "" or a handle of another executor

  static std::uint64_t start_time(int pid);  // 0 when there is no such process
  // Whether the process runs (a zombie does not); with a start time, only the process that has
  // it (a PID reused by another process is not ours).
  static bool running(int pid, std::uint64_t start);

 private:
  // Signals the group led by `group`, unless that PID now names another process (a different
  // start time). With no such process the group's members, if any, are still ours: Linux hands
  // out no PID that is still a group's id.
  static void signal_group(int group, int signal, std::uint64_t leader_start);
  static void reap();  // collects every exited child of the service
  static std::optional<int> read_exit_status(const std::string& exit_path);
  bool isolating_;
  std::string monitor_;
  std::string job_path_;  // jobs' PATH: the system's folders, and this accel's when reachable
  std::unique_ptr<RuntimeCgroups> cgroups_;
  ExitWatcher exit_watcher_;
};

}  // namespace accel::runtime
