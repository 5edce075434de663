// The messages of the bad values kernels record (backend.h: raised at a synchronisation point),
// one text for every backend, so a user sees the same error on the CPU and on a GPU.
#pragma once

#include <cstdint>
#include <string>

namespace accel {

// A cross-entropy class index outside [0, classes).
inline std::string target_out_of_range_message(std::int64_t target, std::int64_t row, std::int64_t classes) {
  return "cross_entropy: target " + std::to_string(target) + " at row " + std::to_string(row) +
         " is out of range for " + std::to_string(classes) + " classes (valid: 0 to " + std::to_string(classes - 1) +
         ")";
}

// A gather_rows index outside [0, rows).
inline std::string row_index_out_of_range_message(std::int64_t index, std::int64_t row, std::int64_t rows) {
  return "gather_rows: index " + std::to_string(index) + " at row " + std::to_string(row) + " is out of range for " +
         std::to_string(rows) + " rows";
}

}  // namespace accel
