// LocalExecutor: runtimes as local process groups. A runtime's worker is the leader of its own
// process group (so one signal reaches every job of the runtime); each job runs under a small
// monitor process in that group which records the job's exit status in a file, so the status
// survives a restart of the daemon. When the service runs as root, workers and jobs run as
// their tenant's own unprivileged uid (RuntimeService picks it), with core dumps off, so one
// tenant can neither read another's files nor signal their processes.
#pragma once

#include <cstdint>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "accel/runtime/service_config.h"  // JobLimits

namespace accel::runtime {

using Environment = std::vector<std::pair<std::string, std::string>>;

// Whom a runtime's processes run as: a tenant's uid and gid, or (uid < 0) the service's own.
struct Identity {
  long long uid = -1, gid = -1;
  bool dropped() const { return uid >= 0; }
};

class LocalExecutor {
 public:
  // `isolating`: the service runs as root and gives each tenant a uid of their own (false: jobs
  // run as the service's user). `monitor`: the accel executable that runs job monitors ("" =
  // this process's executable).
  explicit LocalExecutor(bool isolating, std::string monitor = "");

  // Starts the worker of a runtime in `workdir` as `who`; returns its pid, also its group id.
  int start_worker(const Identity& who, const std::string& workdir, const Environment& env);
  // Starts `argv` as `who` in the worker's group with output to `output_path`, under `limits`;
  // the monitor writes the exit status (128 + signal for a signal) to `exit_path`. Returns the
  // monitor's pid.
  int start_job(const Identity& who, int worker_group, const std::string& workdir, const std::vector<std::string>& argv,
                const Environment& env, const std::string& output_path, const std::string& exit_path,
                const JobLimits& limits = {});
  // Why a tenant cannot reach `path` (a folder above it that others may not search), or "".
  // Jobs start there anyway (the monitor enters it before dropping privileges), but $HOME and
  // every absolute path into it would fail for them.
  std::string unreachable(const std::string& path) const;
  // Gives `path` (a runtime's working directory) to `who`, mode 0700: no other tenant may list,
  // read or write it.
  void hand_over(const std::string& path, const Identity& who) const;
  // SIGKILLs every process whose real uid is `uid` (a tenant's processes that left their
  // runtime's process group with setsid, once the tenant has no runtime left); returns how
  // many. Never for the service's own uid.
  static int kill_processes_of(long long uid);

  // A process's identity is its PID and its start time (clock ticks since boot, /proc/PID/stat):
  // after a restart of the service a stored PID may belong to an unrelated process.
  static std::uint64_t start_time(int pid);  // 0 when there is no such process
  // Reaps exited children first, so a zombie counts as gone; with a start time, a process
  // that has it (a PID reused by another process is not alive for us).
  static bool alive(int pid, std::uint64_t start = 0);
  static void reap();  // collects every exited child of the service
  // Signals the group led by `group`, unless that PID now names another process (a different
  // start time). With no such process the group's members, if any, are still ours: Linux hands
  // out no PID that is still a group's id.
  static void signal_group(int group, int signal, std::uint64_t leader_start = 0);
  static std::optional<int> read_exit_status(const std::string& exit_path);

 private:
  bool isolating_;
  std::string monitor_;
  std::string job_path_;  // jobs' PATH: the system's folders, and this accel's when reachable
};

}  // namespace accel::runtime
