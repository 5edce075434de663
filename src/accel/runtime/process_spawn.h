// Starting the service's child processes: posix_spawn with a declared environment (never the
// daemon's own), and the command line of a job's monitor (`accel __job-monitor`). Shared by the
// executors: LocalExecutor runs the monitor here, SlurmExecutor inside the runtime's allocation.
#pragma once

#include <string>
#include <vector>

#include "accel/runtime/executor.h"

namespace accel::runtime {

// A job's environment: PATH = `path`, LANG, SHELL, then `extra`. The daemon's own may hold
// secrets and folders a tenant's uid cannot search (a PATH through /root made a missing
// command read "Permission denied").
std::vector<std::string> job_environment(const std::string& path, const Environment& extra);

// posix_spawn (no copy of the daemon's page tables, which a fork per job cost under load): the
// child gets process group `process_group` (0: a new one led by itself), the working directory
// `workdir` ("" = the service's), stdin from /dev/null, stdout and stderr to `output` ("" =
// /dev/null, else a file it appends to), none of the daemon's other descriptors (above all not
// its listening socket) and default signal handling. Returns its PID; throws Error.
int spawn_process(const std::string& program, const std::vector<std::string>& argv,
                  const std::vector<std::string>& envp, int process_group, const std::string& workdir,
                  const std::string& output = "");

// This process's executable (/proc/self/exe): the accel that runs job monitors by default.
std::string self_executable();

// The job monitor's options for `spec` (its files, its tenant's uid, its limits), then "--" and
// the command. `cgroup_files`: the runtime's cgroup.procs files the job joins; none and
// `nproc_limit`: RLIMIT_NPROC stands in for the runtime's process limit.
std::vector<std::string> monitor_arguments(const std::string& monitor, const JobSpec& spec,
                                           const std::vector<std::string>& cgroup_files, bool nproc_limit);

}  // namespace accel::runtime
