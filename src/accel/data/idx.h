// IDX files (the MNIST family's format), plain or gzip-compressed: a big-endian header of
// magic (0, 0, type, ndim) and ndim sizes, then the elements. Only unsigned-byte data (type
// 0x08) is read, which is what MNIST and Fashion-MNIST use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace accel::data {

struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> values;  // row-major, product(dims) bytes
};

// Reads `path` (gzip or not, detected by content). Throws DataError naming the file and what is
// wrong: missing/unreadable, bad magic, unsupported element type, truncated data.
IdxArray read_idx(const std::string& path);

}  // namespace accel::data
