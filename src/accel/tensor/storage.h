// Storage: one allocation on one device, shared by every tensor view of it.
#pragma once

#include <cstddef>

#include "accel/core/device.h"
#include "accel/memory/allocator.h"

namespace accel {

class Storage {
 public:
  // Allocates nbytes on `device` through that device's backend allocator.
  Storage(std::size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  Device device() const { return allocator_->device(); }
  const memory::Allocator& allocator() const { return *allocator_; }

 private:
  memory::Allocator* allocator_;
  std::size_t nbytes_;
  void* data_;
};

}  // namespace accel
