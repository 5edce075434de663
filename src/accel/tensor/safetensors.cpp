#include "accel/tensor/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "accel/core/checked_math.h"
#include "accel/core/error.h"

namespace accel {
namespace {

// safetensors' dtype names for the dtypes accel has.
const std::map<DType, std::string>& codes() {
  static const std::map<DType, std::string> names = {
      {DType::Float32, "F32"}, {DType::Float16, "F16"}, {DType::BFloat16, "BF16"}, {DType::Float64, "F64"},
      {DType::Int64, "I64"},   {DType::Int32, "I32"},   {DType::UInt8, "U8"},      {DType::Bool, "BOOL"}};
  return names;
}

// The header is at most 100 MB (safetensors' own limit): a bigger length is corruption.
constexpr std::uint64_t kMaxHeader = 100'000'000;

[[noreturn]] void bad(const std::string& path, const std::string& why) {
  throw DataError("safetensors file " + path + ": " + why);
}

void write_all(int fd, const void* data, std::size_t size, const std::string& path) {
  const char* at = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, at, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error("cannot write " + path + ": " + std::strerror(errno));
    at += n;
    size -= static_cast<std::size_t>(n);
  }
}

}  // namespace

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> host;  // in the order of the map, which is the order of the data
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw ValueError("a tensor may not be named __metadata__ (safetensors reserves it)");
    const Tensor t = tensor.detach().to(kCPU).contiguous();
    const std::uint64_t bytes = static_cast<std::uint64_t>(t.numel()) * element_size(t.dtype());
    header[name] = {
        {"dtype", codes().at(t.dtype())}, {"shape", t.shape().sizes()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    host.push_back(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned, as the reference writer does
  // One temporary name per file, truncated on open: a writer killed mid-write leaves it behind,
  // and the next save reuses it rather than piling up copies (one writer per file at a time).
  const std::string temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot create " + temporary + ": " + std::strerror(errno));
  try {
    std::uint64_t length = text.size();
    unsigned char prefix[8];
    for (int i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>(length >> (8 * i));  // little-endian
    write_all(fd, prefix, 8, temporary);
    write_all(fd, text.data(), text.size(), temporary);
    for (const Tensor& t : host)
      write_all(fd, t.raw_data(), static_cast<std::size_t>(t.numel()) * element_size(t.dtype()), temporary);
    if (::fsync(fd) != 0) throw Error("cannot flush " + temporary + " to disk: " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(temporary.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(temporary.c_str());
    throw Error("cannot move " + temporary + " to " + path + ": " + why);
  }
  // The rename itself is durable once the folder is on disk.
  const std::string folder = std::filesystem::path(path).parent_path().empty()
                                 ? std::string(".")
                                 : std::filesystem::path(path).parent_path().string();
  if (const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw DataError("safetensors file " + path + ": cannot open it (" + std::strerror(errno) + ")");
  const auto file_size = static_cast<std::uint64_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8)
    bad(path, std::to_string(file_size) + " bytes: too short for the 8-byte header length at offset 0");
  unsigned char prefix[8];
  in.read(reinterpret_cast<char*>(prefix), 8);
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | prefix[i];
  if (length > kMaxHeader || 8 + length > file_size) {
    bad(path, "the header length at offset 0 is " + std::to_string(length) + " bytes, but the file has " +
                  std::to_string(file_size) + " (truncated or not a safetensors file)");
  }
  std::string text(length, '\0');
  in.read(text.data(), static_cast<std::streamsize>(length));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    bad(path, "the header (offset 8, " + std::to_string(length) + " bytes) is not valid JSON at its byte " +
                  std::to_string(e.byte));
  }
  if (!header.is_object()) bad(path, "the header at offset 8 is not a JSON object");
  const std::uint64_t data_start = 8 + length, data_size = file_size - data_start;
  SafetensorsFile out;
  struct Range {
    std::uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) bad(path, "__metadata__ must map strings to strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) bad(path, "__metadata__ '" + key + "' is not a string");
        out.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets") ||
        !entry["dtype"].is_string() || !entry["shape"].is_array() || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2) {
      bad(path, where + ": needs dtype, shape and data_offsets [begin, end]");
    }
    DType dtype = DType::Float32;
    bool known = false;
    for (const auto& [candidate, code] : codes()) {
      if (code == entry["dtype"].get<std::string>()) {
        dtype = candidate;
        known = true;
      }
    }
    if (!known) bad(path, where + ": dtype " + entry["dtype"].get<std::string>() + " is not one accel has");
    std::vector<std::int64_t> sizes;
    std::uint64_t count = 1;
    for (const auto& size : entry["shape"]) {
      if (!size.is_number_unsigned()) bad(path, where + ": its shape holds " + size.dump() + ", not a size");
      const auto product = checked_mul<std::uint64_t>(count, size.get<std::uint64_t>());
      if (!product || *product > static_cast<std::uint64_t>(INT64_MAX)) bad(path, where + ": its shape overflows");
      count = *product;
      sizes.push_back(size.get<std::int64_t>());
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) bad(path, where + ": bad data_offsets");
    const std::uint64_t begin = offsets[0], end = offsets[1];
    const std::uint64_t bytes = checked_mul<std::uint64_t>(count, element_size(dtype)).value_or(UINT64_MAX);
    if (end < begin || end - begin != bytes) {
      bad(path, where + ": shape " + entry["shape"].dump() + " of " + entry["dtype"].get<std::string>() + " needs " +
                    std::to_string(bytes) + " bytes, but its data_offsets [" + std::to_string(begin) + ", " +
                    std::to_string(end) + "] hold " + std::to_string(end - begin));
    }
    if (end > data_size) {
      bad(path, where + " ends at byte " + std::to_string(data_start + end) + " of the file, which has " +
                    std::to_string(file_size) + " (truncated)");
    }
    ranges.push_back({begin, end, name});
    Tensor t = empty(Shape(sizes), dtype, kCPU);
    in.seekg(static_cast<std::streamoff>(data_start + begin));
    in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(bytes));
    if (!in) bad(path, where + ": cannot read its bytes at offset " + std::to_string(data_start + begin));
    out.tensors[name] = t;
  }
  // The data is exactly the tensors', back to back (the format's rule: no gaps, no overlaps).
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  std::uint64_t expected = 0;
  for (const Range& r : ranges) {
    if (r.begin != expected)
      bad(path, "tensor '" + r.name + "' starts at data byte " + std::to_string(r.begin) + ", expected " +
                    std::to_string(expected) + " (overlapping or gapped data)");
    expected = r.end;
  }
  if (expected != data_size) {
    bad(path, std::to_string(data_size - expected) + " bytes after the last tensor at offset " +
                  std::to_string(data_start + expected) + " (the file does not end where its tensors do)");
  }
  return out;
}

}  // namespace accel
