#include "accel/memory/simulated_memory.h"

#include <cstdlib>

namespace accel::memory {

SimulatedMemory::SimulatedMemory(std::size_t capacity, int index, bool events_complete_immediately)
    : capacity_(capacity), index_(index), immediate_(events_complete_immediately) {}

SimulatedMemory::~SimulatedMemory() = default;

void* SimulatedMemory::raw_allocate(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (used_ + bytes > capacity_) return nullptr;
  // Segments are multiples of 512 B (the allocator rounds), so 512-byte alignment always fits.
  void* ptr = std::aligned_alloc(512, bytes);
  if (!ptr) return nullptr;
  used_ += bytes;
  blocks_.insert(ptr);
  return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(ptr) | kSimAddressTag);
}

void SimulatedMemory::raw_free(void* ptr, std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  void* host = sim_host_address(ptr);
  blocks_.erase(host);
  std::free(host);
  used_ -= bytes;
}

std::size_t SimulatedMemory::free_memory() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return capacity_ - used_;
}

EventId SimulatedMemory::record_event(StreamId) {
  std::lock_guard<std::mutex> lock(mutex_);
  const EventId id = next_event_++;
  if (!immediate_) pending_.insert(id);
  return id;
}

bool SimulatedMemory::event_done(EventId event) {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_.count(event) == 0;
}

void SimulatedMemory::release_event(EventId event) {
  std::lock_guard<std::mutex> lock(mutex_);
  pending_.erase(event);
}

void SimulatedMemory::complete_events() {
  std::lock_guard<std::mutex> lock(mutex_);
  pending_.clear();
}

std::size_t SimulatedMemory::raw_allocations() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return blocks_.size();
}

std::string SimulatedMemory::name() const { return "sim:" + std::to_string(index_) + " (simulated)"; }

}  // namespace accel::memory
