#include "accel/core/device.h"

#include <charconv>

#include "accel/core/error.h"

namespace accel {

Device::Device(std::string_view spec) {
  const auto fail = [&]() {
    return DeviceError("unknown device '" + std::string(spec) +
                       "': expected 'cpu', 'cuda', 'cuda:N', 'sim' or 'sim:N' (N >= 0; sim is a simulated device); "
                       "to train through an XLA PJRT plugin, 'xla' or 'tpu'");
  };
  if (spec == "cpu") {
    *this = Device(DeviceType::CPU, 0);
    return;
  }
  DeviceType type;
  std::string_view rest;
  if (spec.substr(0, 4) == "cuda") {
    type = DeviceType::CUDA;
    rest = spec.substr(4);
  } else if (spec.substr(0, 3) == "sim") {
    type = DeviceType::Sim;
    rest = spec.substr(3);
  } else {
    throw fail();
  }
  int ordinal = 0;
  if (!rest.empty()) {
    if (rest[0] != ':' || rest.size() < 2) throw fail();
    const char* first = rest.data() + 1;
    const char* last = rest.data() + rest.size();
    auto [ptr, ec] = std::from_chars(first, last, ordinal);
    if (ec != std::errc() || ptr != last || ordinal < 0) throw fail();
  }
  *this = Device(type, ordinal);
}

std::string Device::to_string() const {
  switch (type) {
    case DeviceType::CPU:
      return "cpu";
    case DeviceType::CUDA:
      return "cuda:" + std::to_string(index);
    case DeviceType::Sim:
      return "sim:" + std::to_string(index);
  }
  return "unknown";
}

std::string Device::describe() const { return is_sim() ? to_string() + " (simulated)" : to_string(); }

}  // namespace accel
