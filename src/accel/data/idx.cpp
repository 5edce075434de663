#include "accel/data/idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "accel/core/checked_math.h"
#include "accel/core/error.h"

namespace accel::data {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads exactly n bytes or reports how many were there.
std::size_t read_up_to(gzFile file, void* dst, std::size_t n, const std::string& path) {
  std::size_t done = 0;
  auto* out = static_cast<unsigned char*>(dst);
  while (done < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
    const int got = gzread(file, out + done, chunk);
    if (got < 0) {
      int err = 0;
      const char* message = gzerror(file, &err);
      throw DataError(path + ": cannot decompress (" + std::string(message ? message : "zlib error") +
                      "); the file is corrupt, re-download or reinstall it");
    }
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

std::uint32_t big_endian(const unsigned char* b) {
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  GzFile file(gzopen(path.c_str(), "rb"));
  if (!file) {
    throw DataError(path + ": cannot open (" + std::strerror(errno) + ")");
  }
  unsigned char magic[4];
  if (read_up_to(file.get(), magic, 4, path) != 4) {
    throw DataError(path + ": truncated: the file ends inside the 4-byte IDX header");
  }
  if (magic[0] != 0 || magic[1] != 0 || magic[3] == 0 || magic[3] > 4) {
    char shown[32];
    std::snprintf(shown, sizeof shown, "%02x %02x %02x %02x", magic[0], magic[1], magic[2], magic[3]);
    throw DataError(path + ": bad IDX magic number (" + shown +
                    "); expected 00 00 08 01 (labels) or 00 00 08 03 (images). Is this an IDX file?");
  }
  if (magic[2] != 0x08) {
    throw DataError(path + ": unsupported IDX element type 0x" + std::to_string(magic[2]) +
                    " (only unsigned bytes, 0x08, are supported)");
  }
  IdxArray out;
  constexpr std::uint64_t kMaxBytes = 1ull << 34;  // 16 GiB: a header beyond this is corrupt
  std::uint64_t count = 1;
  std::string dims_text;
  for (int d = 0; d < magic[3]; ++d) {
    unsigned char size[4];
    if (read_up_to(file.get(), size, 4, path) != 4) {
      throw DataError(path + ": truncated: the file ends inside the dimension sizes of the header");
    }
    out.dims.push_back(big_endian(size));
    dims_text += (d ? " x " : "") + std::to_string(out.dims.back());
    const auto product = checked_mul<std::uint64_t>(count, big_endian(size));
    if (!product || *product > kMaxBytes) {
      throw DataError(path + ": header claims " + dims_text + (d + 1 < magic[3] ? " x ..." : "") +
                      " values, more than 16 GiB; the file is corrupt");
    }
    count = *product;
  }
  out.values.resize(count);
  const std::size_t got = read_up_to(file.get(), out.values.data(), count, path);
  if (got != count) {
    throw DataError(path + ": truncated: the header promises " + std::to_string(count) + " bytes of data, found " +
                    std::to_string(got));
  }
  return out;
}

}  // namespace accel::data
