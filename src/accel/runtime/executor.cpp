#include "accel/runtime/executor.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "accel/core/error.h"

extern char** environ;

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

CArgs environment_with(const Environment& extra) {
  std::vector<std::string> items;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    bool replaced = false;
    for (const auto& [key, value] : extra) replaced = replaced || entry.rfind(key + "=", 0) == 0;
    if (!replaced) items.push_back(entry);
  }
  for (const auto& [key, value] : extra) items.push_back(key + "=" + value);
  return CArgs(std::move(items));
}

void write_all(int fd, const char* text) {
  std::size_t n = std::strlen(text);
  while (n > 0) {
    const ssize_t w = write(fd, text, n);
    if (w <= 0) return;
    text += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Async-signal-safe integer formatting for the monitor.
void format_int(int value, char* out) {
  char digits[16];
  int n = 0;
  bool negative = value < 0;
  unsigned int v = negative ? static_cast<unsigned int>(-value) : static_cast<unsigned int>(value);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  int at = 0;
  if (negative) out[at++] = '-';
  while (n) out[at++] = digits[--n];
  out[at++] = '\n';
  out[at] = 0;
}

}  // namespace

LocalExecutor::LocalExecutor(std::string run_as) : run_as_(std::move(run_as)) {
  if (geteuid() == 0 && !run_as_.empty()) {
    const passwd* pw = getpwnam(run_as_.c_str());
    if (!pw) throw ValueError("worker_user '" + run_as_ + "' does not exist on this machine");
    uid_ = static_cast<int>(pw->pw_uid);
    gid_ = static_cast<int>(pw->pw_gid);
  }
}

void LocalExecutor::hand_over(const std::string& path) const {
  if (uid_ < 0) return;
  std::error_code ec;
  if (chown(path.c_str(), static_cast<uid_t>(uid_), static_cast<gid_t>(gid_)) != 0) {
    throw Error("cannot give " + path + " to " + run_as_ + ": " + std::strerror(errno));
  }
  for (const auto& entry : std::filesystem::recursive_directory_iterator(path, ec)) {
    if (entry.path().filename() == ".accel") continue;
    lchown(entry.path().c_str(), static_cast<uid_t>(uid_), static_cast<gid_t>(gid_));
  }
}

int LocalExecutor::start_worker(const std::string& workdir, const Environment& env) {
  CArgs envp = environment_with(env);
  CArgs argv({"sleep", "infinity"});
  const int uid = uid_, gid = gid_;
  const pid_t pid = fork();
  if (pid < 0) throw Error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    // Nothing of the daemon's leaks into the runtime: above all not its listening socket, which
    // would keep the port bound after the daemon dies.
    close_range(3, ~0U, 0);
    setpgid(0, 0);  // the runtime's own process group
    const int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    if (chdir(workdir.c_str()) != 0) _exit(126);
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    if (gid >= 0 &&
        (setgroups(0, nullptr) != 0 || setgid(static_cast<gid_t>(gid)) != 0 || setuid(static_cast<uid_t>(uid)) != 0)) {
      _exit(126);
    }
    execve("/bin/sleep", argv.get(), envp.get());
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so the group exists before any job joins it
  return pid;
}

int LocalExecutor::start_job(int worker_group, const std::string& workdir, const std::vector<std::string>& command,
                             const Environment& env, const std::string& output_path, const std::string& exit_path) {
  if (command.empty()) throw ValueError("a job needs a command");
  CArgs envp = environment_with(env);
  CArgs argv(command);
  const std::string temporary = exit_path + ".tmp";
  const int uid = uid_, gid = gid_;
  const pid_t monitor = fork();
  if (monitor < 0) throw Error(std::string("fork failed: ") + std::strerror(errno));
  if (monitor == 0) {
    close_range(3, ~0U, 0);                         // none of the daemon's descriptors
    if (setpgid(0, worker_group) != 0) _exit(125);  // the worker is gone
    const int output = open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (output < 0) _exit(125);
    const pid_t job = fork();
    if (job == 0) {
      const int devnull = open("/dev/null", O_RDONLY);
      dup2(devnull, 0);
      dup2(output, 1);
      dup2(output, 2);
      if (chdir(workdir.c_str()) != 0) _exit(126);
      rlimit no_core{0, 0};
      setrlimit(RLIMIT_CORE, &no_core);
      if (gid >= 0 && (setgroups(0, nullptr) != 0 || setgid(static_cast<gid_t>(gid)) != 0 ||
                       setuid(static_cast<uid_t>(uid)) != 0)) {
        _exit(126);
      }
      execvpe(argv.get()[0], argv.get(), envp.get());
      write_all(2, "accel: cannot run ");
      write_all(2, argv.get()[0]);
      write_all(2, ": ");
      write_all(2, std::strerror(errno));
      write_all(2, "\n");
      _exit(127);
    }
    // The monitor outlives SIGTERM to the group (the job gets it and may checkpoint), and
    // records how the job ended.
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    int status = 0;
    while (job > 0 && waitpid(job, &status, 0) < 0 && errno == EINTR) {
    }
    const int code = job < 0 ? 125 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char text[24];
    format_int(code, text);
    const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      write_all(fd, text);
      close(fd);
      rename(temporary.c_str(), exit_path.c_str());
    }
    _exit(0);
  }
  return monitor;
}

bool LocalExecutor::alive(int pid) {
  if (pid <= 0) return false;
  int status = 0;
  while (waitpid(-1, &status, WNOHANG) > 0) {  // reap every exited child of the daemon
  }
  if (kill(pid, 0) != 0 && errno != EPERM) return false;
  // A process re-adopted after a restart is no longer our child: when it exits it stays a
  // zombie until its new parent reaps it (a container's init may never do so).
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || (line[close + 2] != 'Z' && line[close + 2] != 'X');
}

void LocalExecutor::signal_group(int group, int signal) {
  if (group > 0) killpg(group, signal);
}

std::optional<int> LocalExecutor::read_exit_status(const std::string& exit_path) {
  std::ifstream in(exit_path);
  int code = 0;
  if (in >> code) return code;
  return std::nullopt;
}

}  // namespace accel::runtime
