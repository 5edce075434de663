// The backend of a simulated device ("sim:N"): the CPU kernels over memory from the device's
// caching allocator, whose capacity is simulated. Everything a user sees names it "simulated".
#pragma once

#include "accel/backends/cpu/cpu_backend.h"

namespace accel::cpu {

class SimBackend final : public CpuBackend {
 public:
  explicit SimBackend(int index) : index_(index) {}
  Device device() const override { return Device(DeviceType::Sim, index_); }
  memory::Allocator& allocator() override;

 private:
  int index_;
};

SimBackend& sim_backend(int index);

}  // namespace accel::cpu
