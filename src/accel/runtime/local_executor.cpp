#include "accel/runtime/local_executor.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "accel/core/error.h"

namespace accel::runtime {
namespace {

// argv/envp as C arrays, built before fork (after fork only async-signal-safe calls are made).
struct CArgs {
  std::vector<std::string> storage;
  std::vector<char*> pointers;
  explicit CArgs(std::vector<std::string> items) : storage(std::move(items)) {
    for (std::string& s : storage) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
  char** get() { return pointers.data(); }
};

// A declared environment, not the service's: the daemon's may hold secrets and folders the
// worker user cannot search (a PATH through /root made a missing command read "Permission
// denied"). The accel that runs the service is on the PATH, after the system's folders, when
// the worker user can reach it (LocalExecutor's constructor decides).
CArgs job_environment(const std::string& path, const Environment& extra) {
  std::vector<std::string> items = {"PATH=" + path, "LANG=C.UTF-8", "SHELL=/bin/sh"};
  for (const auto& [key, value] : extra) items.push_back(key + "=" + value);
  return CArgs(std::move(items));
}

std::string self_executable();
std::vector<int> group_members(int group);
std::uint64_t resident_bytes(const std::vector<int>& pids);
int kill_processes_of(long long uid);

}  // namespace

LocalExecutor::LocalExecutor(bool isolating, std::string monitor, const std::string& cgroup_name,
                             std::function<void()> on_exit)
    : isolating_(isolating),
      monitor_(monitor.empty() ? self_executable() : std::move(monitor)),
      exit_watcher_(std::move(on_exit)) {
  if (!cgroup_name.empty()) cgroups_ = std::make_unique<RuntimeCgroups>(cgroup_name);
  // Orphans of a runtime (a job's children whose parent died) become the service's children,
  // which reap() collects each tick. Left to PID 1 they may stay zombies (a container's or
  // VM's init that does not reap: seen here), and a zombie still counts against its tenant's
  // process limit (RLIMIT_NPROC, pids.max) until reaped.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  job_path_ = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  const std::string accel_dir = std::filesystem::path(monitor_).parent_path().string();
  if (const std::string why = unreachable(accel_dir); why.empty()) {
    job_path_ += ":" + accel_dir;
  } else {  // a PATH entry it cannot search would turn every missing command into EACCES
    std::fprintf(stderr, "accel serve: jobs will not find this accel on their PATH: %s\n", why.c_str());
  }
}

std::string LocalExecutor::unreachable(const std::string& path) const {
  if (!isolating_) return "";
  // A tenant's uid owns nothing outside its runtime's folder and is in no group: only the
  // "others" bits count.
  std::filesystem::path at;
  for (const auto& part : std::filesystem::path(path)) {
    at /= part;
    struct stat st {};
    if (stat(at.c_str(), &st) != 0) continue;  // made later, by the service
    if (!(st.st_mode & S_IXOTH)) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return "tenants' jobs (each user's own uid) cannot reach " + path + ": " + at.string() + " is mode " + mode +
             " (owner uid " + std::to_string(st.st_uid) + "); run `chmod o+x " + at.string() +
             "` or pick a --data-dir they can reach, such as /var/lib/accel";
    }
  }
  return "";
}

void LocalExecutor::hand_over(const std::string& path, const Identity& who) const {
  if (!who.dropped()) return;
  // The folder itself only, through a descriptor that refuses a symlink: its contents are the
  // tenant's already, and a recursive chown by path (root, in a folder the tenant's processes
  // can change meanwhile) could be steered through a swapped-in symlink to any file.
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fchown(fd, static_cast<uid_t>(who.uid), static_cast<gid_t>(who.gid)) != 0 || fchmod(fd, 0700) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) close(fd);
    throw Error("cannot give " + path + " to uid " + std::to_string(who.uid) + ": " + why);
  }
  close(fd);
}

namespace {

// posix_spawn (clone with CLONE_VM|CLONE_VFORK in glibc): no copy of the daemon's page tables,
// which a fork per runtime and per job cost under load. The child gets a new or given process
// group, the given working directory, /dev/null as stdin/stdout/stderr, and none of the
// daemon's other descriptors (above all not its listening socket).
int spawn(const std::string& program, CArgs& argv, CArgs& envp, int process_group, const std::string& workdir) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
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
  const int rc = posix_spawn(&pid, program.c_str(), &actions, &attributes, argv.get(), envp.get());
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

}  // namespace

Handle LocalExecutor::start_worker(const WorkerSpec& spec) {
  std::filesystem::create_directories(spec.workdir);
  hand_over(spec.workdir, spec.who);
  if (cgroups_ && cgroups_->available()) cgroups_->create(spec.runtime_id, spec.limits);
  CArgs envp = job_environment(job_path_, spec.env);
  int pid = 0;
  if (spec.who.dropped()) {
    // setpriv (util-linux) drops to the tenant's uid; posix_spawn cannot change users itself.
    CArgs argv({"setpriv", "--reuid=" + std::to_string(spec.who.uid), "--regid=" + std::to_string(spec.who.gid),
                "--clear-groups", "--", "/bin/sleep", "infinity"});
    pid = spawn("/usr/bin/setpriv", argv, envp, 0, spec.workdir);
  } else {
    CArgs argv({"sleep", "infinity"});
    pid = spawn("/bin/sleep", argv, envp, 0, spec.workdir);
  }
  // The worker only sleeps (setpriv execs, never forks): joining it to the cgroup after the
  // start races with nothing. Jobs join before they start (the monitor does it).
  if (cgroups_ && cgroups_->available()) cgroups_->add(spec.runtime_id, pid);
  return handle_of({pid, start_time(pid), spec.runtime_id});
}

Handle LocalExecutor::start_job(const Handle& worker, const JobSpec& spec) {
  if (spec.command.empty()) throw ValueError("a job needs a command");
  const Process group = parse(worker);
  if (group.pid <= 0) throw Error("no worker to start a job in (handle '" + worker + "')");
  std::vector<std::string> args = {"accel",    "__job-monitor",  "--exit",    spec.exit_path,
                                   "--output", spec.output_path, "--workdir", spec.workdir};
  const Identity& who = spec.who;
  if (who.dropped()) args.insert(args.end(), {"--uid", std::to_string(who.uid), "--gid", std::to_string(who.gid)});
  if (cgroups_ && cgroups_->available()) {
    for (const std::string& file : cgroups_->join_files(group.detail)) args.insert(args.end(), {"--cgroup", file});
  } else if (who.dropped() && spec.runtime_limits.max_processes > 0) {
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
  CArgs argv(std::move(args));
  CArgs envp = job_environment(job_path_, spec.env);
  const int pid = spawn(monitor_, argv, envp, group.pid, spec.workdir);
  exit_watcher_.watch(pid);
  return handle_of({pid, start_time(pid), spec.exit_path});
}

LocalExecutor::~LocalExecutor() = default;

std::string LocalExecutor::confinement() const {
  if (cgroups_ && cgroups_->available()) return cgroups_->description() + ", and rlimits per process";
  return std::string(
             "rlimits only: per-process memory, open files and file size, the tenant's process count; no "
             "per-runtime memory or CPU bound (") +
         (cgroups_     ? cgroups_->description()
          : isolating_ ? "use_cgroups is false in the service config"
                       : "the service is not root: it makes no cgroups") +
         ")";
}

Handle LocalExecutor::handle_of(const Process& process) {
  return std::to_string(process.pid) + ":" + std::to_string(process.start) + ":" + process.detail;
}

LocalExecutor::Process LocalExecutor::parse(const Handle& handle) {
  Process process;
  const auto first = handle.find(':');
  const auto second = first == std::string::npos ? first : handle.find(':', first + 1);
  if (second == std::string::npos) return process;
  process.pid = std::atoi(handle.substr(0, first).c_str());
  process.start = std::strtoull(handle.c_str() + first + 1, nullptr, 10);
  process.detail = handle.substr(second + 1);
  return process;
}

std::string LocalExecutor::describe(const Handle& handle) const {
  return "process " + std::to_string(parse(handle).pid);
}

std::vector<bool> LocalExecutor::workers_alive(const std::vector<Handle>& workers) {
  reap();
  std::vector<bool> out;
  for (const Handle& worker : workers) {
    const Process p = parse(worker);
    out.push_back(running(p.pid, p.start));
  }
  return out;
}

std::vector<JobStatus> LocalExecutor::poll_jobs(const std::vector<Handle>& jobs) {
  reap();
  std::vector<JobStatus> out;
  for (const Handle& job : jobs) {
    const Process p = parse(job);
    JobStatus status;
    status.running = running(p.pid, p.start);
    // Also for a running one: right after a SIGKILL of its runtime the monitor may not have
    // died yet, and a job that ended before it still has its status on file.
    status.exit_code = read_exit_status(p.detail);
    out.push_back(status);
  }
  return out;
}

void LocalExecutor::watch_job(const Handle& job) { exit_watcher_.watch(parse(job).pid); }

void LocalExecutor::terminate(const Handle& worker) {
  const Process p = parse(worker);
  signal_group(p.pid, SIGTERM, p.start);
  // Processes that left the group (setsid) are still in the runtime's cgroup.
  if (cgroups_ && cgroups_->available()) {
    for (int pid : cgroups_->pids(p.detail)) ::kill(pid, SIGTERM);
  }
}

void LocalExecutor::kill(const Handle& worker) {
  const Process p = parse(worker);
  signal_group(p.pid, SIGKILL, p.start);
  if (cgroups_ && cgroups_->available()) {
    cgroups_->kill(p.detail);
    reap();
    cgroups_->remove(p.detail);
  }
}

int LocalExecutor::end_tenant(const Identity& who) { return who.dropped() ? kill_processes_of(who.uid) : 0; }

Usage LocalExecutor::usage(const Handle& worker) {
  const Process p = parse(worker);
  Usage usage;
  if (cgroups_ && cgroups_->available()) {
    const RuntimeCgroups::Counters counters = cgroups_->counters(p.detail);
    usage.memory_bytes = counters.memory_bytes;
    usage.processes = counters.processes;
    usage.cpu_seconds = counters.cpu_seconds;
    usage.pids = cgroups_->pids(p.detail);
  } else {
    usage.pids = group_members(p.pid);
    usage.processes = usage.pids.size();
    usage.memory_bytes = resident_bytes(usage.pids);
  }
  return usage;
}

void LocalExecutor::reap() {
  int status = 0;
  while (waitpid(-1, &status, WNOHANG) > 0) {
  }
}

namespace {

// The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses):
// [0] is the state (field 3), [19] the start time (field 22). Empty when there is no such process.
std::vector<std::string> stat_fields(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  std::vector<std::string> fields;
  if (close == std::string::npos || close + 2 >= line.size()) return fields;
  std::istringstream rest(line.substr(close + 2));
  for (std::string field; rest >> field;) fields.push_back(field);
  return fields;
}

std::uint64_t start_time_of(const std::vector<std::string>& fields) {
  return fields.size() > 19 ? std::strtoull(fields[19].c_str(), nullptr, 10) : 0;
}

// The members of a process group, from /proc (a runtime without a cgroup).
std::vector<int> group_members(int group) {
  std::vector<int> members;
  if (group <= 0) return members;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::vector<std::string> fields = stat_fields(std::stoi(name));
    if (fields.size() > 2 && std::strtol(fields[2].c_str(), nullptr, 10) == group) members.push_back(std::stoi(name));
  }
  return members;
}

std::uint64_t resident_bytes(const std::vector<int>& pids) {
  const auto page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  std::uint64_t total = 0;
  for (int pid : pids) {
    std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
    std::uint64_t size = 0, resident = 0;
    if (statm >> size >> resident) total += resident * page;
  }
  return total;
}

}  // namespace

std::uint64_t LocalExecutor::start_time(int pid) { return pid > 0 ? start_time_of(stat_fields(pid)) : 0; }

bool LocalExecutor::running(int pid, std::uint64_t start) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  // A process re-adopted after a restart is no longer our child: when it exits it stays a
  // zombie until its new parent reaps it (a container's init may never do so). One read of
  // /proc gives both the state and the start time.
  const std::vector<std::string> fields = stat_fields(pid);
  const bool exited = !fields.empty() && (fields[0] == "Z" || fields[0] == "X");
  return !exited && (start == 0 || start_time_of(fields) == start);
}

void LocalExecutor::signal_group(int group, int signal, std::uint64_t leader_start) {
  if (group <= 0) return;
  if (leader_start != 0) {
    const std::uint64_t now = start_time(group);
    if (now != 0 && now != leader_start) return;  // the PID was reused: not our group
  }
  killpg(group, signal);
}

namespace {

// SIGKILLs every process whose real uid is `uid` (a tenant's processes that left their
// runtime's process group with setsid, once the tenant has no runtime left); returns how many.
// Never for the service's own uid.
int kill_processes_of(long long uid) {
  if (uid < 0 || static_cast<uid_t>(uid) == getuid()) return 0;
  // A few passes: a process may fork while the first pass runs. Real uid from /proc/PID/status
  // ("Uid: real effective saved fs"); setuid programs the tenant ran keep it as their real uid.
  int killed = 0;
  for (int pass = 0; pass < 3; ++pass) {
    int found = 0;
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc", std::filesystem::directory_options::skip_permission_denied)) {
      const std::string name = entry.path().filename();
      if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream status(entry.path() / "status");
      for (std::string line; std::getline(status, line);) {
        if (line.rfind("Uid:", 0) != 0) continue;
        if (std::strtoll(line.c_str() + 4, nullptr, 10) == uid && ::kill(std::stoi(name), SIGKILL) == 0) ++found;
        break;
      }
    }
    killed += found;
    if (found == 0) break;
  }
  return killed;
}

}  // namespace

std::optional<int> LocalExecutor::read_exit_status(const std::string& exit_path) {
  std::ifstream in(exit_path);
  int code = 0;
  if (in >> code) return code;
  return std::nullopt;
}

}  // namespace accel::runtime
