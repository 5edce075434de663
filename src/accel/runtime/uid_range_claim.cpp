#include "accel/runtime/uid_range_claim.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>
#include <vector>

#include "accel/core/error.h"
#include "accel/runtime/local_executor.h"  // LocalExecutor::start_time

namespace accel::runtime {
namespace {

// One line of the registry: "FIRST COUNT PID START_TIME DATA_DIR".
struct Claim {
  long long first = 0, count = 0;
  int pid = 0;
  std::uint64_t start = 0;
  std::string data_dir;
  bool parsed = false;
};

Claim parse(const std::string& line) {
  Claim claim;
  std::istringstream fields(line);
  claim.parsed = static_cast<bool>(fields >> claim.first >> claim.count >> claim.pid >> claim.start);
  std::getline(fields >> std::ws, claim.data_dir);
  return claim;
}

// Runs `change` on the registry's live lines under an exclusive lock and writes back what it
// leaves; lines of services that are gone are dropped on the way.
void edit(const std::string& registry, const std::function<void(std::vector<std::string>&)>& change) {
  std::error_code ignored;
  std::filesystem::create_directories(std::filesystem::path(registry).parent_path(), ignored);
  const int fd = open(registry.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot open the tenant uid registry " + registry + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX) != 0) {
    close(fd);
    throw Error("cannot lock the tenant uid registry " + registry + ": " + std::strerror(errno));
  }
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(n));
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const Claim claim = parse(line);
    if (claim.parsed && LocalExecutor::start_time(claim.pid) == claim.start) lines.push_back(line);
  }
  try {
    change(lines);
  } catch (...) {
    close(fd);  // releases the lock
    throw;
  }
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  const bool written =
      ftruncate(fd, 0) == 0 && pwrite(fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size());
  close(fd);
  if (!written) throw Error("cannot write the tenant uid registry " + registry);
}

}  // namespace

UidRangeClaim::UidRangeClaim(long long first, long long count, const std::string& data_dir, std::string registry)
    : registry_(std::move(registry)) {
  const int pid = static_cast<int>(getpid());
  mine_ = std::to_string(first) + " " + std::to_string(count) + " " + std::to_string(pid) + " " +
          std::to_string(LocalExecutor::start_time(pid)) + " " + data_dir;
  edit(registry_, [&](std::vector<std::string>& lines) {
    for (const std::string& line : lines) {
      const Claim other = parse(line);
      if (first < other.first + other.count && other.first < first + count) {
        throw ValueError("tenant uids " + std::to_string(first) + "-" + std::to_string(first + count - 1) +
                         " overlap those of the accel serve with pid " + std::to_string(other.pid) + " (data in " +
                         other.data_dir + ": uids " + std::to_string(other.first) + "-" +
                         std::to_string(other.first + other.count - 1) +
                         "); each service kills its tenants' stray processes by uid, so they would end each other's "
                         "jobs. Give this one another tenant_uid_first (and tenant_uid_count) in its config");
      }
    }
    lines.push_back(mine_);
  });
}

UidRangeClaim::~UidRangeClaim() {
  try {
    edit(registry_, [&](std::vector<std::string>& lines) { std::erase(lines, mine_); });
  } catch (const std::exception&) {
    // a claim left behind stops counting once this process is gone
  }
}

}  // namespace accel::runtime
