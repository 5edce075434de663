// Device: where a tensor lives. Parsed from and printed as "cpu", "cuda", "cuda:1".
#pragma once

#include <string>
#include <string_view>

namespace accel {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;  // the CUDA ordinal; always 0 for the CPU

  Device() = default;
  Device(DeviceType device_type, int device_index = 0) : type(device_type), index(device_index) {}
  // Parses "cpu", "cuda", "cuda:N"; throws DeviceError with the accepted forms otherwise.
  explicit Device(std::string_view spec);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string to_string() const;
  bool operator==(const Device& other) const = default;
};

inline const Device kCPU{DeviceType::CPU, 0};

}  // namespace accel
