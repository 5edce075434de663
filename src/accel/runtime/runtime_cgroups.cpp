#include "accel/runtime/runtime_cgroups.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "accel/core/error.h"

namespace accel::runtime {
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kWanted = {"memory", "pids", "cpu", "cpuacct"};

// One write() of the whole text, as the cgroup files want; "" on success, else why not.
std::string try_write(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return path + ": " + std::strerror(errno);
  const ssize_t n = write(fd, text.data(), text.size());
  const int error = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) return "writing '" + text + "' to " + path + ": " + std::strerror(error);
  return "";
}

void write_or_throw(const std::string& path, const std::string& text) {
  if (const std::string why = try_write(path, text); !why.empty()) throw Error("cgroup: " + why);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<std::uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  std::uint64_t value = 0;
  if (in >> value) return value;
  return std::nullopt;
}

// A "key value" line of memory.stat or cpu.stat.
std::uint64_t stat_value(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string name;
  std::uint64_t value = 0;
  while (in >> name >> value) {
    if (name == key) return value;
  }
  return 0;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
  return parts;
}

bool has_processes(const std::string& cgroup) {
  return read_text(cgroup + "/cgroup.procs").find_first_not_of(" \n") != std::string::npos;
}

}  // namespace

RuntimeCgroups::RuntimeCgroups(const std::string& name) {
  std::ifstream self("/proc/self/cgroup");
  std::string v2_path;
  std::vector<std::pair<std::vector<std::string>, std::string>> v1;  // controllers, own path
  for (std::string line; std::getline(self, line);) {
    const auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1), path = line.substr(second + 1);
    if (line.compare(0, first, "0") == 0 && controllers.empty()) {
      v2_path = path;
    } else {
      v1.emplace_back(split(controllers, ','), path);
    }
  }
  std::vector<std::string> reasons;
  // cgroup v2: the service's own cgroup must offer the controllers, and a cgroup with processes
  // in it may not hand controllers to children (the "no internal processes" rule), so the
  // service first moves itself into a leaf of its own cgroup, as a delegated systemd unit does.
  for (const char* mount : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    if (v2_path.empty() || !fs::exists(std::string(mount) + "/cgroup.controllers")) continue;
    const std::string own = std::string(mount) + (v2_path == "/" ? "" : v2_path);
    const std::vector<std::string> offered = split(read_text(own + "/cgroup.controllers"), ' ');
    const auto offers = [&](const std::string& c) {
      return std::any_of(offered.begin(), offered.end(), [&](std::string o) {
        o.erase(std::remove(o.begin(), o.end(), '\n'), o.end());
        return o == c;
      });
    };
    if (!offers("memory") || !offers("pids") || !offers("cpu")) {
      reasons.push_back("cgroup v2 at " + own +
                        " offers no memory, pids and cpu controllers (a systemd unit needs Delegate=yes)");
      continue;
    }
    std::string why;
    if (own != mount && has_processes(own)) {
      std::error_code ec;
      fs::create_directory(own + "/service", ec);
      why = try_write(own + "/service/cgroup.procs", std::to_string(getpid()));
    }
    if (why.empty()) why = try_write(own + "/cgroup.subtree_control", "+memory +pids +cpu");
    const std::string base = own + "/" + name;
    std::error_code ec;
    if (why.empty() && !fs::create_directory(base, ec) && ec) why = base + ": " + ec.message();
    if (why.empty()) why = try_write(base + "/cgroup.subtree_control", "+memory +pids +cpu");
    if (why.empty()) {
      hierarchies_.push_back({{"memory", "pids", "cpu"}, base, true});
      return;
    }
    reasons.push_back("cgroup v2 at " + own + ": " + why);
  }
  // cgroup v1: one hierarchy per controller (or per group of them), mounted under /sys/fs/cgroup.
  for (const auto& [controllers, path] : v1) {
    std::vector<std::string> useful;
    for (const std::string& c : controllers)
      if (std::find(kWanted.begin(), kWanted.end(), c) != kWanted.end()) useful.push_back(c);
    if (useful.empty()) continue;
    std::string mount = "/sys/fs/cgroup/";
    for (std::size_t i = 0; i < controllers.size(); ++i) mount += (i ? "," : "") + controllers[i];
    if (!fs::exists(mount + "/cgroup.procs")) {
      reasons.push_back("cgroup v1 " + mount + " is not mounted");
      continue;
    }
    const std::string base = mount + (path == "/" ? "" : path) + "/" + name;
    std::error_code ec;
    fs::create_directories(base, ec);
    if (ec) {
      reasons.push_back("cgroup v1 " + base + ": " + ec.message());
      continue;
    }
    hierarchies_.push_back({useful, base, false});
  }
  if (!with("pids")) {  // without it a runtime's processes cannot be listed or ended as one
    for (const Hierarchy& h : hierarchies_) {
      std::error_code ec;
      fs::remove(h.base, ec);
    }
    hierarchies_.clear();
    if (reasons.empty()) reasons.push_back("no cgroup hierarchy with the pids controller is mounted");
  }
  for (const std::string& r : reasons) why_not_ += (why_not_.empty() ? "" : "; ") + r;
  if (hierarchies_.empty()) return;
  // Folders left by an earlier run of this service: those still holding processes belong to
  // runtimes it will re-adopt; the empty ones go.
  for (const Hierarchy& h : hierarchies_) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(h.base, ec)) {
      if (entry.is_directory(ec) && !has_processes(entry.path().string())) fs::remove(entry.path(), ec);
    }
  }
}

RuntimeCgroups::~RuntimeCgroups() {
  retry_removals();
  for (const Hierarchy& h : hierarchies_) {
    std::error_code ec;
    fs::remove(h.base, ec);  // only when empty: runtimes left running stay for the next start
  }
}

std::string RuntimeCgroups::description() const {
  if (hierarchies_.empty()) return "no cgroups (" + why_not_ + ")";
  // "cgroup v1 (pids at /sys/fs/cgroup/pids/accel-400000, memory at ...)": where each lives.
  std::string where;
  for (const Hierarchy& h : hierarchies_) {
    std::string controllers;
    for (const std::string& c : h.controllers) controllers += (controllers.empty() ? "" : "+") + c;
    where += (where.empty() ? "" : ", ") + controllers + " at " + h.base;
  }
  return std::string(hierarchies_.front().v2 ? "cgroup v2" : "cgroup v1") + " (" + where + ")";
}

const RuntimeCgroups::Hierarchy* RuntimeCgroups::with(const std::string& controller) const {
  for (const Hierarchy& h : hierarchies_) {
    if (std::find(h.controllers.begin(), h.controllers.end(), controller) != h.controllers.end()) return &h;
  }
  return nullptr;
}

void RuntimeCgroups::create(const std::string& runtime, const RuntimeLimits& limits) {
  for (const Hierarchy& h : hierarchies_) {
    std::error_code ec;
    if (!fs::create_directory(folder(h, runtime), ec) && ec)
      throw Error("cgroup: cannot make " + folder(h, runtime) + ": " + ec.message());
  }
  const auto limit = [](double value) { return value > 0 ? std::to_string(static_cast<long long>(value)) : ""; };
  if (const Hierarchy* h = with("memory")) {
    const std::string bytes = limit(std::llround(limits.memory_gb * 1024 * 1024 * 1024));
    if (h->v2) {
      write_or_throw(folder(*h, runtime) + "/memory.max", bytes.empty() ? "max" : bytes);
      // Beyond the limit a job is ended, not swapped out to slow every tenant's disk.
      try_write(folder(*h, runtime) + "/memory.swap.max", "0");
    } else {
      write_or_throw(folder(*h, runtime) + "/memory.limit_in_bytes", bytes.empty() ? "-1" : bytes);
    }
  }
  if (const Hierarchy* h = with("pids")) {
    const std::string count = limit(limits.max_processes);
    write_or_throw(folder(*h, runtime) + "/pids.max", count.empty() ? "max" : count);
  }
  if (const Hierarchy* h = with("cpu")) {
    constexpr long long kPeriodUs = 100000;
    const std::string quota = limit(std::llround(limits.cpus * kPeriodUs));
    if (h->v2) {
      write_or_throw(folder(*h, runtime) + "/cpu.max",
                     (quota.empty() ? "max" : quota) + " " + std::to_string(kPeriodUs));
    } else {
      write_or_throw(folder(*h, runtime) + "/cpu.cfs_period_us", std::to_string(kPeriodUs));
      write_or_throw(folder(*h, runtime) + "/cpu.cfs_quota_us", quota.empty() ? "-1" : quota);
    }
  }
}

std::vector<std::string> RuntimeCgroups::join_files(const std::string& runtime) const {
  std::vector<std::string> files;
  for (const Hierarchy& h : hierarchies_) files.push_back(folder(h, runtime) + "/cgroup.procs");
  return files;
}

void RuntimeCgroups::add(const std::string& runtime, int pid) {
  for (const std::string& file : join_files(runtime)) write_or_throw(file, std::to_string(pid));
}

std::vector<int> RuntimeCgroups::pids(const std::string& runtime) const {
  std::vector<int> out;
  if (const Hierarchy* h = with("pids")) {
    std::ifstream in(folder(*h, runtime) + "/cgroup.procs");
    for (int pid = 0; in >> pid;) out.push_back(pid);
  }
  return out;
}

int RuntimeCgroups::kill(const std::string& runtime) {
  const Hierarchy* h = with("pids");
  if (!h) return 0;
  int signalled = 0;
  if (h->v2) {
    signalled = static_cast<int>(pids(runtime).size());
    if (try_write(folder(*h, runtime) + "/cgroup.kill", "1").empty()) return signalled;  // Linux >= 5.14
    signalled = 0;
  }
  // v1 has no cgroup.kill: signal what is listed until nothing is (a process forking meanwhile
  // adds one the next pass catches; pids.max bounds how many there can be).
  for (int pass = 0; pass < 100; ++pass) {
    const std::vector<int> left = pids(runtime);
    if (left.empty()) break;
    for (int pid : left) signalled += ::kill(pid, SIGKILL) == 0;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return signalled;
}

void RuntimeCgroups::remove(const std::string& runtime) {
  leftovers_.push_back(runtime);
  retry_removals();
}

void RuntimeCgroups::retry_removals() {
  std::vector<std::string> busy;
  for (const std::string& runtime : leftovers_) {
    bool removed = true;
    for (const Hierarchy& h : hierarchies_) {
      std::error_code ec;
      fs::remove(folder(h, runtime), ec);  // rmdir: EBUSY while a process (an exiting one) is inside
      removed = removed && (!ec || ec == std::errc::no_such_file_or_directory);
    }
    if (!removed) busy.push_back(runtime);
  }
  leftovers_ = std::move(busy);
}

RuntimeCgroups::Counters RuntimeCgroups::counters(const std::string& runtime) const {
  Counters out;
  if (const Hierarchy* h = with("memory")) {
    const std::string dir = folder(*h, runtime);
    // As `docker stats` counts it: the page cache the kernel can drop on demand is not used.
    const std::uint64_t used = read_number(dir + (h->v2 ? "/memory.current" : "/memory.usage_in_bytes")).value_or(0);
    const std::uint64_t cache = stat_value(dir + "/memory.stat", h->v2 ? "inactive_file" : "total_inactive_file");
    out.memory_bytes = used > cache ? used - cache : 0;
  }
  if (const Hierarchy* h = with("pids")) out.processes = read_number(folder(*h, runtime) + "/pids.current").value_or(0);
  if (const Hierarchy* h = with("cpu"); h && h->v2) {
    out.cpu_seconds = static_cast<double>(stat_value(folder(*h, runtime) + "/cpu.stat", "usage_usec")) / 1e6;
  } else if (const Hierarchy* acct = with("cpuacct")) {
    if (auto ns = read_number(folder(*acct, runtime) + "/cpuacct.usage"))
      out.cpu_seconds = static_cast<double>(*ns) / 1e9;
  }
  return out;
}

}  // namespace accel::runtime
