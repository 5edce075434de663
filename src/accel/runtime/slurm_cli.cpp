#include "accel/runtime/slurm_cli.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "accel/core/error.h"

extern char** environ;

namespace accel::runtime::slurm {
namespace {

std::vector<std::string> split(const std::string& line, char separator) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, separator)) fields.push_back(field);
  if (!line.empty() && line.back() == separator) fields.emplace_back();
  return fields;
}

}  // namespace

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.empty() ? "(no message)" : line;
}

ToolResult run_tool(const std::vector<std::string>& argv, double timeout_s) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw Error(std::string("cannot make a pipe: ") + std::strerror(errno));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw Error(std::string("cannot make a pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv.front().c_str(), &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw Error("cannot run " + argv.front() + ": " + std::strerror(rc));
  }
  ToolResult result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    const int ready = ::poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[8192];
      const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& fd : fds)
    if (fd.fd >= 0) close(fd.fd);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = !timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (timed_out) result.err += "(no answer in " + std::to_string(static_cast<int>(timeout_s)) + " s)";
  return result;
}

std::map<std::string, QueuedJob> parse_squeue(const std::string& text) {
  std::map<std::string, QueuedJob> jobs;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const std::vector<std::string> f = split(line, '|');
    if (f.size() < 8 || f[0].empty()) continue;
    jobs[f[0]] = {f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]};
  }
  return jobs;
}

std::map<std::string, AccountedJob> parse_sacct(const std::string& text) {
  std::map<std::string, AccountedJob> jobs;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const std::vector<std::string> f = split(line, '|');
    if (f.size() < 3 || f[0].empty()) continue;
    jobs[f[0]] = {f[1].substr(0, f[1].find(' ')), f[2]};
  }
  return jobs;
}

WorkerStatus worker_status(const std::string& state) {
  using State = WorkerStatus::State;
  WorkerStatus status;
  status.detail = state;
  // Waiting for the scheduler, or for nodes it chose to boot; a requeued job waits again.
  if (state == "PENDING" || state == "REQUEUED" || state == "REQUEUE_HOLD" || state == "REQUEUE_FED" ||
      state == "CONFIGURING" || state == "RESIZING") {
    status.state = State::pending;
    // Holding its allocation: COMPLETING is a job in its preemption grace or being cancelled;
    // what follows (PENDING again for a requeue, or an end) says which.
  } else if (state == "RUNNING" || state == "COMPLETING" || state == "SUSPENDED" || state == "STOPPED" ||
             state == "SIGNALING" || state == "STAGE_OUT") {
    status.state = State::running;
  } else {
    status.state = State::ended;
    if (state == "PREEMPTED")
      status.reason = "preempted";
    else if (state == "TIMEOUT")
      status.reason = "max lifetime";
    else if (state == "CANCELLED")
      status.reason = "cancelled in Slurm";
    else if (state == "NODE_FAIL" || state == "BOOT_FAIL")
      status.reason = "node failure";
    else if (state == "DEADLINE")
      status.reason = "deadline";
    else  // COMPLETED, FAILED, OUT_OF_MEMORY, SPECIAL_EXIT: the worker, which only sleeps, ended
      status.reason = "worker crashed";
  }
  return status;
}

std::optional<std::string> parse_job_id(const std::string& text) {
  std::string id = text.substr(0, text.find_first_of(";\n"));
  while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return id;
}

double parse_size(const std::string& text) {
  if (text.empty()) return 0;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  double scale = 1;
  switch (end && *end ? *end : ' ') {
    case 'K':
      scale = 1024.0;
      break;
    case 'M':
      scale = 1024.0 * 1024;
      break;
    case 'G':
      scale = 1024.0 * 1024 * 1024;
      break;
    case 'T':
      scale = 1024.0 * 1024 * 1024 * 1024;
      break;
    default:
      break;
  }
  return value * scale;
}

double parse_duration(const std::string& text) {
  // [days-][hours:]minutes:seconds[.fraction]
  double days = 0;
  std::string rest = text;
  if (const auto dash = rest.find('-'); dash != std::string::npos) {
    days = std::strtod(rest.substr(0, dash).c_str(), nullptr);
    rest = rest.substr(dash + 1);
  }
  const std::vector<std::string> parts = split(rest, ':');
  double seconds = 0;
  for (const std::string& part : parts) seconds = seconds * 60 + std::strtod(part.c_str(), nullptr);
  return days * 86400 + seconds;
}

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

long long time_limit_minutes(double seconds) {
  return std::max(1LL, static_cast<long long>(std::ceil(seconds / 60.0)));
}

}  // namespace accel::runtime::slurm
