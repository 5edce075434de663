#include "accel/core/device.h"

#include <charconv>

#include "accel/core/error.h"

namespace accel {

Device::Device(std::string_view spec) {
  const auto fail = [&]() {
    return DeviceError("unknown device '" + std::string(spec) + "': expected 'cpu', 'cuda' or 'cuda:N' (N >= 0)");
  };
  if (spec == "cpu") {
    *this = Device(DeviceType::CPU, 0);
    return;
  }
  if (spec.substr(0, 4) != "cuda") throw fail();
  std::string_view rest = spec.substr(4);
  int ordinal = 0;
  if (!rest.empty()) {
    if (rest[0] != ':' || rest.size() < 2) throw fail();
    const char* first = rest.data() + 1;
    const char* last = rest.data() + rest.size();
    auto [ptr, ec] = std::from_chars(first, last, ordinal);
    if (ec != std::errc() || ptr != last || ordinal < 0) throw fail();
  }
  *this = Device(DeviceType::CUDA, ordinal);
}

std::string Device::to_string() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

}  // namespace accel
