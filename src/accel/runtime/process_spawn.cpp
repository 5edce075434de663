#include "accel/runtime/process_spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cstring>

#include "accel/core/error.h"

namespace accel::runtime {
namespace {

// argv/envp as the NULL-terminated arrays posix_spawn takes.
struct CArgs {
  std::vector<std::string> storage;
  std::vector<char*> pointers;
  explicit CArgs(std::vector<std::string> items) : storage(std::move(items)) {
    for (std::string& s : storage) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
  char** get() { return pointers.data(); }
};

}  // namespace

std::vector<std::string> job_environment(const std::string& path, const Environment& extra) {
  std::vector<std::string> items = {"PATH=" + path, "LANG=C.UTF-8", "SHELL=/bin/sh"};
  for (const auto& [key, value] : extra) items.push_back(key + "=" + value);
  return items;
}

int spawn_process(const std::string& program, const std::vector<std::string>& argv,
                  const std::vector<std::string>& envp, int process_group, const std::string& workdir,
                  const std::string& output) {
  CArgs args(argv), environment(envp);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (output.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
  }
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  if (!workdir.empty()) posix_spawn_file_actions_addchdir_np(&actions, workdir.c_str());
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attributes, process_group);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);  // the daemon blocks SIGTERM; its runtimes must not
  posix_spawnattr_setsigdefault(&attributes, &all);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, program.c_str(), &actions, &attributes, args.get(), environment.get());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) throw Error("cannot start " + program + ": " + std::strerror(rc));
  return pid;
}

std::string self_executable() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) throw Error("cannot find the accel executable (/proc/self/exe)");
  path[n] = 0;
  return path;
}

std::vector<std::string> monitor_arguments(const std::string& monitor, const JobSpec& spec,
                                           const std::vector<std::string>& cgroup_files, bool nproc_limit) {
  if (spec.command.empty()) throw ValueError("a job needs a command");
  std::vector<std::string> args = {monitor,    "__job-monitor",  "--exit",    spec.exit_path,
                                   "--output", spec.output_path, "--workdir", spec.workdir};
  const Identity& who = spec.who;
  if (who.dropped()) args.insert(args.end(), {"--uid", std::to_string(who.uid), "--gid", std::to_string(who.gid)});
  for (const std::string& file : cgroup_files) args.insert(args.end(), {"--cgroup", file});
  if (cgroup_files.empty() && nproc_limit && who.dropped() && spec.runtime_limits.max_processes > 0) {
    // No cgroup: the tenant's uid counts their processes (all their runtimes together).
    args.insert(args.end(), {"--nproc", std::to_string(spec.runtime_limits.max_processes)});
  }
  const JobLimits& limits = spec.limits;
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  if (limits.ram_gb > 0)
    args.insert(args.end(), {"--as", std::to_string(static_cast<long long>(limits.ram_gb * kGiB))});
  if (limits.open_files > 0) args.insert(args.end(), {"--nofile", std::to_string(limits.open_files)});
  if (limits.file_size_gb > 0) {
    args.insert(args.end(), {"--fsize", std::to_string(static_cast<long long>(limits.file_size_gb * kGiB))});
  }
  if (limits.nice > 0) args.insert(args.end(), {"--nice", std::to_string(limits.nice)});
  args.emplace_back("--");
  args.insert(args.end(), spec.command.begin(), spec.command.end());
  return args;
}

}  // namespace accel::runtime
