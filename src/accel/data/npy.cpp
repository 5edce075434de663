#include "accel/data/npy.h"

#include <zip.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include "accel/core/checked_math.h"
#include "accel/core/error.h"

namespace accel::data {
namespace {

// NumPy's descr strings for the dtypes accel has ('<' little-endian, '|' no byte order).
bool dtype_of_descr(const std::string& descr, DType* out) {
  static const std::map<std::string, DType> known = {
      {"<f4", DType::Float32}, {"<f8", DType::Float64}, {"|u1", DType::UInt8}, {"<u1", DType::UInt8},
      {"<i8", DType::Int64},   {"<i4", DType::Int32},   {"|b1", DType::Bool},  {"<f2", DType::Float16}};
  const auto it = known.find(descr);
  if (it == known.end()) return false;
  *out = it->second;
  return true;
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& what) {
  const auto bad = [&](const std::string& why) -> DataError { return DataError(what + ": " + why); };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    throw bad("not a NumPy .npy array (no \\x93NUMPY magic at offset 0)");
  }
  const auto major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_length = 0, header_start = 0;
  if (major == 1) {
    header_length =
        static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw bad("truncated in its header length (offset 8)");
    for (int i = 3; i >= 0; --i) header_length = (header_length << 8) | static_cast<unsigned char>(bytes[8 + i]);
    header_start = 12;
  } else {
    throw bad("NumPy format version " + std::to_string(major) + " is not one accel reads (1, 2 or 3)");
  }
  if (header_start + header_length > bytes.size()) {
    throw bad("the header (offset " + std::to_string(header_start) + ", " + std::to_string(header_length) +
              " bytes) runs past the end of the " + std::to_string(bytes.size()) + " bytes");
  }
  const std::string header = bytes.substr(header_start, header_length);
  static const std::regex descr_re(R"('descr'\s*:\s*'([^']*)')");
  static const std::regex order_re(R"('fortran_order'\s*:\s*(True|False))");
  static const std::regex shape_re(R"('shape'\s*:\s*\(([^)]*)\))");
  std::smatch descr, order, shape;
  if (!std::regex_search(header, descr, descr_re) || !std::regex_search(header, order, order_re) ||
      !std::regex_search(header, shape, shape_re)) {
    throw bad("the header is not NumPy's dict of descr, fortran_order and shape: " + header);
  }
  DType dtype{};
  if (!dtype_of_descr(descr[1].str(), &dtype)) {
    throw bad("dtype '" + descr[1].str() +
              "' is not one accel reads (float32, float64, float16, uint8, int32, int64, bool, little-endian): "
              "convert it with arr.astype(...)");
  }
  if (order[1].str() == "True") {
    throw bad("the array is in Fortran order: save np.ascontiguousarray(arr) instead");
  }
  std::vector<std::int64_t> sizes;
  const std::string dims = shape[1].str();
  static const std::regex dim_re(R"(^\s*(\d{1,18})\s*$)");
  std::stringstream items(dims);
  for (std::string item; std::getline(items, item, ',');) {
    if (item.find_first_not_of(" \t") == std::string::npos) continue;  // "(3,)": the trailing comma
    std::smatch size;
    if (!std::regex_match(item, size, dim_re)) throw bad("shape (" + dims + ") holds '" + item + "', not a size");
    sizes.push_back(std::stoll(size[1].str()));
  }
  Shape tensor_shape;
  try {
    tensor_shape = Shape(sizes);
  } catch (const Error& e) {
    throw bad("shape (" + dims + ") is not a valid size: " + e.what());
  }
  const auto product =
      checked_mul(static_cast<std::uint64_t>(tensor_shape.numel()), static_cast<std::uint64_t>(element_size(dtype)));
  if (!product) throw bad("shape (" + dims + ") is too large");
  const std::uint64_t data_bytes = *product;
  const std::size_t data_start = header_start + header_length;
  if (bytes.size() - data_start != data_bytes) {
    throw bad("shape " + tensor_shape.to_string() + " of " + descr[1].str() + " needs " + std::to_string(data_bytes) +
              " bytes after offset " + std::to_string(data_start) + ", but " +
              std::to_string(bytes.size() - data_start) + " are there (truncated or damaged)");
  }
  Tensor out = empty(tensor_shape, dtype);
  std::memcpy(out.raw_data(), bytes.data() + data_start, data_bytes);
  return out;
}

Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open it (" + std::strerror(errno) + ")");
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return parse_npy(bytes, path);
}

std::map<std::string, Tensor> read_npz(const std::string& path) {
  int error = 0;
  const std::unique_ptr<zip_t, decltype(&zip_discard)> archive(
      zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &error), &zip_discard);
  if (!archive) {
    zip_error_t why;
    zip_error_init_with_code(&why, error);
    const std::string message = zip_error_strerror(&why);
    zip_error_fini(&why);
    throw DataError(path + ": not a readable .npz (zip) archive: " + message);
  }
  std::map<std::string, Tensor> arrays;
  const zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t stat;
    if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), 0, &stat) != 0) continue;
    std::string name = stat.name;
    const std::string what = path + " member " + name;
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;
    if (!(stat.valid & ZIP_STAT_SIZE)) throw DataError(what + ": the archive does not say its size (damaged?)");
    const std::unique_ptr<zip_file_t, decltype(&zip_fclose)> file(
        zip_fopen_index(archive.get(), static_cast<zip_uint64_t>(i), 0), &zip_fclose);
    if (!file) throw DataError(what + ": cannot open it: " + zip_strerror(archive.get()));
    // Read as the data arrives, not by the size the header claims: a crafted archive can claim
    // terabytes in a few bytes, and memory is taken only for bytes that really decompress.
    std::string bytes;
    char chunk[1 << 16];
    for (zip_int64_t got; (got = zip_fread(file.get(), chunk, sizeof chunk)) != 0;) {
      if (got < 0) throw DataError(what + ": cannot read it (" + zip_file_strerror(file.get()) + "; damaged archive?)");
      bytes.append(chunk, static_cast<std::size_t>(got));
      if (bytes.size() > stat.size) throw DataError(what + ": holds more bytes than the archive says (damaged?)");
    }
    if (bytes.size() != stat.size) {
      throw DataError(what + ": " + std::to_string(bytes.size()) + " bytes where the archive says " +
                      std::to_string(stat.size) + " (damaged?)");
    }
    name.resize(name.size() - 4);
    arrays[name] = parse_npy(bytes, what);
  }
  if (arrays.empty()) throw DataError(path + ": the archive holds no .npy arrays");
  return arrays;
}

}  // namespace accel::data
