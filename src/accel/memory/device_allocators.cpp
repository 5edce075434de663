#include "accel/memory/device_allocators.h"

#include <cstdlib>
#include <mutex>

#include "accel/core/error.h"
#include "accel/memory/device_memory_registry.h"
#include "accel/memory/simulated_memory.h"

namespace accel::memory {
namespace {

constexpr std::size_t kDefaultSimCapacity = 16ull << 30;

std::mutex registry_mutex;
std::map<std::pair<int, int>, std::unique_ptr<CachingAllocator>>& registry() {
  // Never destroyed: tensors in static storage may be freed after main returns.
  static auto* allocators = new std::map<std::pair<int, int>, std::unique_ptr<CachingAllocator>>();
  return *allocators;
}
std::map<int, std::size_t> sim_capacities;

std::map<DeviceType, DeviceMemoryFactory>& factories() {
  static auto* instance = new std::map<DeviceType, DeviceMemoryFactory>();  // filled at static initialisation
  return *instance;
}

std::size_t parse_capacity(const std::string& text) {
  std::size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    throw ValueError("ACCEL_SIM_MEMORY: '" + text + "' is not a size (e.g. 16G, 512M, 1073741824)");
  }
  std::string unit = text.substr(pos);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  if (!unit.empty() && unit.back() == 'i') unit.pop_back();
  const double scale = unit.empty()                 ? 1.0
                       : unit == "K" || unit == "k" ? 1024.0
                       : unit == "M" || unit == "m" ? 1048576.0
                       : unit == "G" || unit == "g" ? 1073741824.0
                                                    : -1.0;
  if (scale < 0 || value <= 0) throw ValueError("ACCEL_SIM_MEMORY: '" + text + "' is not a size (e.g. 16G, 512M)");
  return static_cast<std::size_t>(value * scale);
}

std::unique_ptr<CachingAllocator> create(Device device) {
  const AllocatorConfig config = AllocatorConfig::from_environment();
  if (device.is_sim()) {
    std::size_t capacity = kDefaultSimCapacity;
    if (auto it = sim_capacities.find(device.index); it != sim_capacities.end()) {
      capacity = it->second;
    } else if (const char* env = std::getenv("ACCEL_SIM_MEMORY")) {
      capacity = parse_capacity(env);
    }
    return std::make_unique<CachingAllocator>(std::make_unique<SimulatedMemory>(capacity, device.index), config,
                                              device);
  }
  const auto found = factories().find(device.type);
  if (found == factories().end()) {
    const std::string name = device.to_string();
    throw DeviceError("device " + name + " cannot be used: this build of accel has no " +
                      name.substr(0, name.find(':')) +
                      " backend (so no memory for it); use --device cpu, or rebuild accel where that device's toolkit "
                      "is installed (CUDA: nvcc found at configure time)");
  }
  return std::make_unique<CachingAllocator>(found->second(device.index), config, device);
}

}  // namespace

DeviceMemoryRegistration::DeviceMemoryRegistration(DeviceType type, DeviceMemoryFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  factories().emplace(type, std::move(factory));
}

CachingAllocator& caching_allocator(Device device) {
  if (device.is_cpu()) {
    throw DeviceError(
        "the caching allocator's statistics are for cuda and sim devices; host memory is counted by "
        "memory::host_allocator().stats()");
  }
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto& slot = registry()[{static_cast<int>(device.type), device.index}];
  if (!slot) {
    slot = create(device);
    slot->publish_usage(std::make_unique<UsagePublisher>(device, device.is_sim()));
  }
  return *slot;
}

void set_simulated_device_capacity(int index, std::size_t bytes) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  if (registry().count({static_cast<int>(DeviceType::Sim), index})) {
    throw ValueError("set_simulated_device_capacity: sim:" + std::to_string(index) +
                     " already exists; set its capacity before its first allocation");
  }
  sim_capacities[index] = bytes;
}

std::int64_t memory_allocated(Device device) { return caching_allocator(device).memory_allocated(); }
std::int64_t memory_reserved(Device device) { return caching_allocator(device).memory_reserved(); }
std::int64_t max_memory_allocated(Device device) { return caching_allocator(device).max_memory_allocated(); }
std::int64_t max_memory_reserved(Device device) { return caching_allocator(device).max_memory_reserved(); }
void reset_peak_memory_stats(Device device) { caching_allocator(device).reset_peak_memory_stats(); }
std::map<std::string, std::int64_t> memory_stats(Device device) {
  return to_dictionary(caching_allocator(device).memory_stats());
}
std::string memory_summary(Device device) { return caching_allocator(device).memory_summary(); }
void empty_cache(Device device) { caching_allocator(device).empty_cache(); }
void set_per_process_memory_fraction(double fraction, Device device) {
  caching_allocator(device).set_per_process_memory_fraction(fraction);
}
std::pair<std::size_t, std::size_t> mem_get_info(Device device) { return caching_allocator(device).mem_get_info(); }

}  // namespace accel::memory
