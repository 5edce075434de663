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
#include "accel/runtime/process_spawn.h"

namespace accel::runtime {
namespace {

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

Handle LocalExecutor::start_worker(const WorkerSpec& spec) {
  std::filesystem::create_directories(spec.workdir);
  hand_over(spec.workdir, spec.who);
  if (cgroups_ && cgroups_->available()) cgroups_->create(spec.runtime_id, spec.limits);
  const std::vector<std::string> envp = job_environment(job_path_, spec.env);
  int pid = 0;
  if (spec.who.dropped()) {
    // setpriv (util-linux) drops to the tenant's uid; posix_spawn cannot change users itself.
    pid = spawn_process("/usr/bin/setpriv",
                        {"setpriv", "--reuid=" + std::to_string(spec.who.uid),
                         "--regid=" + std::to_string(spec.who.gid), "--clear-groups", "--", "/bin/sleep", "infinity"},
                        envp, 0, spec.workdir);
  } else {
    pid = spawn_process("/bin/sleep", {"sleep", "infinity"}, envp, 0, spec.workdir);
  }
  // The worker only sleeps (setpriv execs, never forks): joining it to the cgroup after the
  // start races with nothing. Jobs join before they start (the monitor does it).
  if (cgroups_ && cgroups_->available()) cgroups_->add(spec.runtime_id, pid);
  return handle_of({pid, start_time(pid), spec.runtime_id});
}

Handle LocalExecutor::start_job(const Handle& worker, const JobSpec& spec) {
  const Process group = parse(worker);
  if (group.pid <= 0) throw Error("no worker to start a job in (handle '" + worker + "')");
  const bool in_cgroup = cgroups_ && cgroups_->available();
  const std::vector<std::string> argv = monitor_arguments(
      monitor_, spec, in_cgroup ? cgroups_->join_files(group.detail) : std::vector<std::string>{}, true);
  const int pid = spawn_process(monitor_, argv, job_environment(job_path_, spec.env), group.pid, spec.workdir);
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

std::vector<WorkerStatus> LocalExecutor::poll_workers(const std::vector<Handle>& workers) {
  reap();
  std::vector<WorkerStatus> out;
  for (const Handle& worker : workers) {
    const Process p = parse(worker);
    WorkerStatus status;
    status.state = running(p.pid, p.start) ? WorkerStatus::State::running : WorkerStatus::State::ended;
    out.push_back(status);
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

void LocalExecutor::kill(const Handle& worker, bool /*jobs_running*/) {
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
