#include "accel/memory/usage_publisher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

namespace accel::memory {

// The shared layout; `magic` is written last so a reader never sees a half-made record.
struct UsagePublisher::Record {
  std::atomic<std::uint64_t> magic;
  std::int32_t pid;
  std::int32_t device_type;
  std::int32_t device_index;
  std::int32_t simulated;
  std::atomic<std::int64_t> allocated;
  std::atomic<std::int64_t> reserved;
  std::atomic<std::int64_t> peak_allocated;
  std::atomic<std::int64_t> peak_reserved;
};

namespace {

constexpr std::uint64_t kMagic = 0x6163636c6d656d31ull;  // "acclmem1"
constexpr const char* kPrefix = "accel-mem-";

bool alive(int pid) { return kill(pid, 0) == 0 || errno == EPERM; }

// Removes this process's records when it exits normally. The allocators themselves are never
// destroyed (tensors in static storage may outlive main), so their publishers never are either.
struct ExitCleanup {
  std::vector<std::string> paths;
  ~ExitCleanup() {
    for (const std::string& path : paths) unlink(path.c_str());
  }
};

ExitCleanup& exit_cleanup() {
  static ExitCleanup cleanup;
  return cleanup;
}

}  // namespace

std::string usage_directory() {
  if (const char* dir = std::getenv("ACCEL_USAGE_DIR"); dir && *dir) return dir;
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec)) return "/dev/shm";
  return std::filesystem::temp_directory_path(ec).string();
}

UsagePublisher::UsagePublisher(Device device, bool simulated) {
  path_ = usage_directory() + "/" + kPrefix + std::to_string(getpid()) + "-" + device.to_string();
  std::replace(path_.begin() + static_cast<std::ptrdiff_t>(path_.rfind('/')), path_.end(), ':', '_');
  const int fd = open(path_.c_str(), O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  exit_cleanup().paths.push_back(path_);
  if (ftruncate(fd, sizeof(Record)) == 0) {
    void* mapped = mmap(nullptr, sizeof(Record), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapped != MAP_FAILED) {
      record_ = static_cast<Record*>(mapped);
      record_->pid = getpid();
      record_->device_type = static_cast<std::int32_t>(device.type);
      record_->device_index = device.index;
      record_->simulated = simulated ? 1 : 0;
      record_->magic.store(kMagic, std::memory_order_release);
    }
  }
  close(fd);
}

UsagePublisher::~UsagePublisher() {
  if (record_) munmap(record_, sizeof(Record));
  if (!path_.empty()) unlink(path_.c_str());
}

void UsagePublisher::update(std::int64_t allocated, std::int64_t reserved, std::int64_t peak_allocated,
                            std::int64_t peak_reserved) {
  if (!record_) return;
  record_->allocated.store(allocated, std::memory_order_relaxed);
  record_->reserved.store(reserved, std::memory_order_relaxed);
  record_->peak_allocated.store(peak_allocated, std::memory_order_relaxed);
  record_->peak_reserved.store(peak_reserved, std::memory_order_relaxed);
}

std::vector<PublishedUsage> read_published_usage() {
  std::vector<PublishedUsage> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(usage_directory(), ec)) {
    if (entry.path().filename().string().rfind(kPrefix, 0) != 0) continue;
    const int fd = open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    UsagePublisher::Record record{};
    const bool complete = pread(fd, &record, sizeof record, 0) == static_cast<ssize_t>(sizeof record);
    close(fd);
    if (!complete || record.magic.load() != kMagic) continue;
    if (!alive(record.pid)) {  // left by a process that was killed: tidy it away
      unlink(entry.path().c_str());
      continue;
    }
    PublishedUsage u;
    u.pid = record.pid;
    u.device = Device(static_cast<DeviceType>(record.device_type), record.device_index);
    u.simulated = record.simulated != 0;
    u.allocated = record.allocated.load();
    u.reserved = record.reserved.load();
    u.peak_allocated = record.peak_allocated.load();
    u.peak_reserved = record.peak_reserved.load();
    out.push_back(u);
  }
  std::sort(out.begin(), out.end(), [](const PublishedUsage& a, const PublishedUsage& b) {
    return a.pid != b.pid ? a.pid < b.pid : a.device.to_string() < b.device.to_string();
  });
  return out;
}

}  // namespace accel::memory
