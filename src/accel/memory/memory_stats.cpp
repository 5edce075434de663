#include "accel/memory/memory_stats.h"

namespace accel::memory {

std::map<std::string, std::int64_t> to_dictionary(const MemoryStats& s) {
  std::map<std::string, std::int64_t> out;
  const auto add = [&](const std::string& name, const StatArray& stats) {
    const char* pools[] = {"all", "small_pool", "large_pool"};
    for (int p = 0; p < 3; ++p) {
      const std::string prefix = name + "." + pools[p] + ".";
      out[prefix + "current"] = stats[static_cast<std::size_t>(p)].current;
      out[prefix + "peak"] = stats[static_cast<std::size_t>(p)].peak;
      out[prefix + "allocated"] = stats[static_cast<std::size_t>(p)].allocated;
      out[prefix + "freed"] = stats[static_cast<std::size_t>(p)].freed;
    }
  };
  add("allocation", s.allocation);
  add("segment", s.segment);
  add("active", s.active);
  add("inactive_split", s.inactive_split);
  add("allocated_bytes", s.allocated_bytes);
  add("reserved_bytes", s.reserved_bytes);
  add("active_bytes", s.active_bytes);
  add("inactive_split_bytes", s.inactive_split_bytes);
  add("requested_bytes", s.requested_bytes);
  out["num_alloc_retries"] = s.num_alloc_retries;
  out["num_ooms"] = s.num_ooms;
  out["num_device_alloc"] = s.num_device_alloc;
  out["num_device_free"] = s.num_device_free;
  return out;
}

}  // namespace accel::memory
