// UidRangeClaim: a service's claim on its tenant uid range, machine-wide. A service kills every
// process of a tenant's uid when the tenant's last runtime ends, so two services on one machine
// whose ranges overlap would kill each other's jobs (the suite did, before its services got
// ranges of their own). Claims live in one registry file under /run, changed under flock; a
// claim whose service is gone (its PID dead or reused: PID and start time) no longer counts.
#pragma once

#include <string>

namespace accel::runtime {

class UidRangeClaim {
 public:
  // Throws ValueError naming the other service when a live one claims an overlapping range.
  UidRangeClaim(long long first, long long count, const std::string& data_dir,
                std::string registry = "/run/accel/tenant-uid-ranges");
  ~UidRangeClaim();  // withdraws the claim
  UidRangeClaim(const UidRangeClaim&) = delete;
  UidRangeClaim& operator=(const UidRangeClaim&) = delete;

 private:
  std::string registry_;
  std::string mine_;  // this claim's line
};

}  // namespace accel::runtime
