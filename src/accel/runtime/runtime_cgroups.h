// RuntimeCgroups: a cgroup for each runtime, so that its processes are bounded together (memory,
// processes, CPU: the tier's RuntimeLimits), counted together (usage from the kernel's
// counters, not a walk of /proc) and ended together (also those that left the runtime's process
// group with setsid). It uses cgroup v2 where the service's own cgroup has the memory, pids and
// cpu controllers (a systemd unit with Delegate=yes), else the v1 hierarchies of those
// controllers; with neither, available() is false and why() says what is missing, and the
// service falls back to rlimits (docs/security.md).
//
// Layout: <the service's own cgroup>/<name>/<runtime id> in each hierarchy, made by root and
// not writable by tenants, so no job can move itself out.
#pragma once

#include <cstdint>

#include <optional>
#include <string>
#include <vector>

#include "accel/runtime/service_config.h"  // RuntimeLimits

namespace accel::runtime {

class RuntimeCgroups {
 public:
  // `name`: this service's folder, unique among the services of the machine.
  explicit RuntimeCgroups(const std::string& name);
  ~RuntimeCgroups();  // removes the service's folders where they are empty
  RuntimeCgroups(const RuntimeCgroups&) = delete;
  RuntimeCgroups& operator=(const RuntimeCgroups&) = delete;

  bool available() const { return !hierarchies_.empty(); }
  // "cgroup v1 (memory, pids, cpu, cpuacct)", or why there is none.
  std::string description() const;

  // Makes (or finds, after a restart) the runtime's cgroup with `limits`; throws Error naming
  // the file that could not be written.
  void create(const std::string& runtime, const RuntimeLimits& limits);
  // The cgroup.procs files a process writes "0" into to join the runtime (the job monitor does,
  // as root, before it starts the job: its children are born inside).
  std::vector<std::string> join_files(const std::string& runtime) const;
  void add(const std::string& runtime, int pid);
  std::vector<int> pids(const std::string& runtime) const;
  // SIGKILLs every process of the runtime (cgroup.kill where the kernel has it); returns how
  // many it signalled.
  int kill(const std::string& runtime);
  // Removes the runtime's cgroup once its processes are gone; runtimes whose processes have not
  // yet exited are retried on later calls.
  void remove(const std::string& runtime);

  struct Counters {
    std::uint64_t memory_bytes = 0;  // used, less the page cache the kernel may drop
    std::uint64_t processes = 0;
    std::optional<double> cpu_seconds;
  };
  Counters counters(const std::string& runtime) const;

 private:
  struct Hierarchy {
    std::vector<std::string> controllers;
    std::string base;  // <mount>/<own cgroup>/<name>
    bool v2 = false;
  };
  const Hierarchy* with(const std::string& controller) const;
  std::string folder(const Hierarchy& h, const std::string& runtime) const { return h.base + "/" + runtime; }
  void retry_removals();

  std::vector<Hierarchy> hierarchies_;
  std::string why_not_;
  std::vector<std::string> leftovers_;  // runtimes whose folders were busy when removed
};

}  // namespace accel::runtime
