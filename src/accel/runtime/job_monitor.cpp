#include "accel/runtime/job_monitor.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace accel::runtime {

int job_monitor_main(int argc, char** argv) {
  std::string exit_path, output_path, workdir;
  int uid = -1, gid = -1, nice = 0;
  // The tier's limits (JobLimits), set in the job before it drops privileges and starts.
  std::vector<std::pair<int, rlim_t>> limits = {{RLIMIT_CORE, 0}};
  std::vector<std::string> cgroups;  // cgroup.procs files of the runtime's cgroup, one per hierarchy
  int command_at = -1;
  bool append_output = false;  // the output file exists already (srun made it, with its own messages)
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") {
      command_at = i + 1;
      break;
    }
    if (arg == "--append-output") {
      append_output = true;
      continue;
    }
    if (i + 1 >= argc) return 125;
    if (arg == "--exit")
      exit_path = argv[++i];
    else if (arg == "--output")
      output_path = argv[++i];
    else if (arg == "--workdir")
      workdir = argv[++i];
    else if (arg == "--uid")
      uid = std::stoi(argv[++i]);
    else if (arg == "--gid")
      gid = std::stoi(argv[++i]);
    else if (arg == "--cgroup")
      cgroups.emplace_back(argv[++i]);
    else if (arg == "--nproc")
      limits.emplace_back(RLIMIT_NPROC, std::stoull(argv[++i]));
    else if (arg == "--as")
      limits.emplace_back(RLIMIT_AS, std::stoull(argv[++i]));
    else if (arg == "--nofile")
      limits.emplace_back(RLIMIT_NOFILE, std::stoull(argv[++i]));
    else if (arg == "--fsize")
      limits.emplace_back(RLIMIT_FSIZE, std::stoull(argv[++i]));
    else if (arg == "--nice")
      nice = std::stoi(argv[++i]);
    else
      return 125;
  }
  if (command_at < 0 || command_at >= argc || exit_path.empty() || output_path.empty()) return 125;

  // The service's own folder holds both files (never the tenant's); a fresh file that is not a
  // symlink all the same, as defence in depth.
  const int output = open(output_path.c_str(),
                          O_WRONLY | O_CREAT | (append_output ? O_APPEND : O_EXCL) | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (output < 0) return 125;
  // The exit file's space is taken now: a job that fills the disk (it shares the service's file
  // system) must not make its own exit status unrecordable.
  const std::string temporary = exit_path + ".tmp";
  const int exit_fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (exit_fd >= 0) posix_fallocate(exit_fd, 0, 64);
  // The monitor outlives a runtime's SIGTERM (sent to the whole group) to record the job's end,
  // so it ignores it from before the job exists: ignored only after the fork, a SIGTERM that came
  // once the job had started (and printed) but before the monitor ran on killed the monitor, and
  // the service took the job for ended while it still ran its grace. The job gets the defaults.
  const int ignored[] = {SIGTERM, SIGINT, SIGHUP};
  for (int sig : ignored) signal(sig, SIG_IGN);
  const pid_t job = fork();  // this process is small and single-threaded: forking it is cheap
  if (job == 0) {
    for (int sig : ignored) signal(sig, SIG_DFL);
    dup2(output, 1);
    dup2(output, 2);
    if (!workdir.empty() && chdir(workdir.c_str()) != 0) _exit(126);
    // Into the runtime's cgroup before the command starts, so that it and everything it starts
    // are inside from their first instruction (still root here: tenants cannot write these files).
    for (const std::string& file : cgroups) {
      const int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, "0", 1) != 1) {
        std::fprintf(stderr, "accel: cannot join the runtime's cgroup (%s): %s\n", file.c_str(), std::strerror(errno));
        _exit(126);
      }
      close(fd);
    }
    for (const auto& [resource, wanted] : limits) {
      // A tier's limit only ever lowers: where the machine's hard limit is already below it
      // (65,536 open files above a host's fs.nr_open, say), the machine's stays.
      rlimit current{};
      getrlimit(resource, &current);
      const rlim_t value = current.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, current.rlim_max);
      const rlimit limit{value, value};
      if (setrlimit(resource, &limit) != 0) {
        std::fprintf(stderr, "accel: cannot set resource limit %d to %llu: %s\n", resource,
                     static_cast<unsigned long long>(value), std::strerror(errno));
        _exit(126);
      }
    }
    // The tier's nice is added to the service's own (as nice(1) does), so a service started
    // under nice keeps its jobs below itself and a job never gets ahead of its service.
    errno = 0;
    if (nice > 0 && ::nice(nice) == -1 && errno != 0) {
      std::fprintf(stderr, "accel: cannot lower the priority to nice %d: %s\n", nice, std::strerror(errno));
      _exit(126);
    }
    if (gid >= 0 &&
        (setgroups(0, nullptr) != 0 || setgid(static_cast<gid_t>(gid)) != 0 || setuid(static_cast<uid_t>(uid)) != 0)) {
      std::fprintf(stderr, "accel: cannot drop privileges to uid %d: %s\n", uid, std::strerror(errno));
      _exit(126);
    }
    // Files the job makes are its tenant's alone, also in shared places such as /tmp; its
    // temporary folder ($TMPDIR, inside its runtime's 0700 folder) is made as the tenant.
    umask(077);
    if (const char* tmp = std::getenv("TMPDIR"); tmp && mkdir(tmp, 0700) != 0 && errno != EEXIST) {
      std::fprintf(stderr, "accel: cannot make the job's TMPDIR %s: %s\n", tmp, std::strerror(errno));
    }
    execvp(argv[command_at], argv + command_at);
    if (errno == ENOENT && !std::strchr(argv[command_at], '/')) {
      const char* path = std::getenv("PATH");
      std::fprintf(stderr, "accel: %s: command not found in this runtime (PATH=%s)\n", argv[command_at],
                   path ? path : "");
    } else {
      std::fprintf(stderr, "accel: cannot run %s: %s\n", argv[command_at], std::strerror(errno));
    }
    _exit(127);
  }
  int status = 0;
  while (job > 0 && waitpid(job, &status, 0) < 0 && errno == EINTR) {
  }
  const int code = job < 0 ? 125 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // Written into the space taken at the start, then cut to its length (neither needs a block).
  char text[16];
  const int length = std::snprintf(text, sizeof text, "%d\n", code);
  if (exit_fd >= 0 && pwrite(exit_fd, text, static_cast<std::size_t>(length), 0) == length &&
      ftruncate(exit_fd, length) == 0 && close(exit_fd) == 0) {
    std::rename(temporary.c_str(), exit_path.c_str());
  }
  return 0;
}

}  // namespace accel::runtime
