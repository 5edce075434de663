// Publishes a device allocator's live counters where other processes can read them: a small
// memory-mapped record per (process, device) in /dev/shm (or ACCEL_USAGE_DIR). `accel smi`
// lists them next to NVML's per-process memory, so a user sees how much of a GPU process's
// memory its tensors hold and how much the cache keeps. Updating is four stores, no syscall.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "accel/core/device.h"

namespace accel::memory {

struct PublishedUsage {
  int pid = 0;
  Device device;
  bool simulated = false;
  std::int64_t allocated = 0;
  std::int64_t reserved = 0;
  std::int64_t peak_allocated = 0;
  std::int64_t peak_reserved = 0;
};

class UsagePublisher {
 public:
  // Creates the record; if the folder is not writable the publisher stays silent (training
  // must not fail because monitoring cannot).
  UsagePublisher(Device device, bool simulated);
  ~UsagePublisher();
  UsagePublisher(const UsagePublisher&) = delete;
  UsagePublisher& operator=(const UsagePublisher&) = delete;

  void update(std::int64_t allocated, std::int64_t reserved, std::int64_t peak_allocated, std::int64_t peak_reserved);
  const std::string& path() const { return path_; }

 public:
  struct Record;  // the shared layout (usage_publisher.cpp)

 private:
  std::string path_;
  Record* record_ = nullptr;
};

// The records of live processes, oldest pid first. Stale files of dead processes are skipped.
std::vector<PublishedUsage> read_published_usage();

// ACCEL_USAGE_DIR, else /dev/shm, else the temp folder.
std::string usage_directory();

}  // namespace accel::memory
