// Small text helpers shared by the inspection commands.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace accel::cli {

// "15.0 GiB"
std::string gib(std::uint64_t bytes);
// Whole MiB, as nvidia-smi prints memory.
inline std::uint64_t mib(std::uint64_t bytes) { return bytes / (1024 * 1024); }

template <typename T>
std::string or_na(const std::optional<T>& value, const std::string& suffix = "") {
  return value ? std::to_string(*value) + suffix : "N/A";
}

}  // namespace accel::cli
