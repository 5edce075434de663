#include "accel/data/npy.h"

#include <zip.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>

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
  static const std::regex number_re(R"(\d+)");
  const std::string dims = shape[1].str();
  for (std::sregex_iterator it(dims.begin(), dims.end(), number_re), end; it != end; ++it) {
    sizes.push_back(std::stoll(it->str()));
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
    if (stat.size > (std::uint64_t{1} << 40))
      throw DataError(what + ": " + std::to_string(stat.size) + " bytes is too large");
    const std::unique_ptr<zip_file_t, decltype(&zip_fclose)> file(
        zip_fopen_index(archive.get(), static_cast<zip_uint64_t>(i), 0), &zip_fclose);
    if (!file) throw DataError(what + ": cannot open it: " + zip_strerror(archive.get()));
    std::string bytes(stat.size, '\0');
    const zip_int64_t got = zip_fread(file.get(), bytes.data(), stat.size);
    if (got < 0 || static_cast<std::uint64_t>(got) != stat.size) {
      throw DataError(what + ": cannot read it (" + zip_file_strerror(file.get()) + "; damaged archive?)");
    }
    name.resize(name.size() - 4);
    arrays[name] = parse_npy(bytes, what);
  }
  if (arrays.empty()) throw DataError(path + ": the archive holds no .npy arrays");
  return arrays;
}

}  // namespace accel::data
