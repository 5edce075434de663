// A child process spoken to over its stdin and stdout (binary), for reference implementations
// that answer step by step (tests/parity/torch_step_reference.py). Its stderr is the test's.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace accel::testing {

class ReferenceProcess {
 public:
  explicit ReferenceProcess(const std::vector<std::string>& argv) {
    ::signal(SIGPIPE, SIG_IGN);  // a child that died is an EPIPE error here, not our death
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(to_child[0]);
    ::close(from_child[1]);
    to_ = to_child[1];
    from_ = from_child[0];
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  ReferenceProcess(const ReferenceProcess&) = delete;
  ReferenceProcess& operator=(const ReferenceProcess&) = delete;
  ~ReferenceProcess() {
    if (to_ >= 0) ::close(to_);
    if (from_ >= 0) ::close(from_);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }

  template <typename T>
  void write(const std::vector<T>& values) {
    write_bytes(values.data(), values.size() * sizeof(T));
  }
  template <typename T>
  void write_value(T value) {
    write_bytes(&value, sizeof(T));
  }
  template <typename T>
  std::vector<T> read(std::size_t count) {
    std::vector<T> values(count);
    read_bytes(values.data(), count * sizeof(T));
    return values;
  }

 private:
  void write_bytes(const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t n = ::write(to_, p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        throw std::runtime_error("the reference process stopped reading: " + std::string(std::strerror(errno)));
      p += n;
      size -= static_cast<std::size_t>(n);
    }
  }
  void read_bytes(void* data, std::size_t size) {
    auto* p = static_cast<char*>(data);
    while (size > 0) {
      const ssize_t n = ::read(from_, p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("the reference process ended before answering (see its stderr above)");
      p += n;
      size -= static_cast<std::size_t>(n);
    }
  }

  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

}  // namespace accel::testing
