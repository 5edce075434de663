// Device: where a tensor lives. Parsed from and printed as "cpu", "cuda", "cuda:1", "sim:0".
// A sim device is simulated: CPU compute with a fixed-capacity device memory under the caching
// allocator, for rehearsing a GPU memory budget on a machine without one.
#pragma once

#include <string>
#include <string_view>

namespace accel {

enum class DeviceType { CPU, CUDA, Sim };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;  // the CUDA or sim ordinal; always 0 for the CPU

  Device() = default;
  Device(DeviceType device_type, int device_index = 0) : type(device_type), index(device_index) {}
  // Parses "cpu", "cuda", "cuda:N", "sim", "sim:N"; throws DeviceError with the accepted forms otherwise.
  explicit Device(std::string_view spec);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool is_sim() const { return type == DeviceType::Sim; }
  std::string to_string() const;
  // to_string() plus " (simulated)" for sim devices: the form every user-facing line uses.
  std::string describe() const;
  bool operator==(const Device& other) const = default;
};

inline const Device kCPU{DeviceType::CPU, 0};

}  // namespace accel
