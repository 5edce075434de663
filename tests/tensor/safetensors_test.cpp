// safetensors files (tensor/safetensors.h): every dtype round-trips byte for byte, a SIGKILL
// mid-write leaves the previous file whole, and damaged files are DataErrors naming the file,
// the tensor and the offset. That PyTorch reads what accel writes: parity/safetensors_torch_test.cpp.
#include "accel/tensor/safetensors.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "accel/core/error.h"

namespace fs = std::filesystem;
using namespace accel;

namespace {

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("accel_safetensors_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string bytes_of(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  void write_bytes(const fs::path& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }
  // A file with this header text (the 8-byte length in front) and `data` after it.
  fs::path with_header(const std::string& header, const std::string& data) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    const fs::path path = dir_ / "crafted.safetensors";
    write_bytes(path, bytes + header + data);
    return path;
  }
  // The DataError message of loading `path`, or "" when it loads.
  std::string refusal(const fs::path& path) {
    try {
      load_safetensors(path.string());
    } catch (const DataError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(),
                     static_cast<std::size_t>(a.numel()) * element_size(a.dtype())) == 0;
}

}  // namespace

TEST_F(Safetensors, EveryDtypeRoundTripsByteForByteWithItsMetadata) {
  std::map<std::string, Tensor> tensors;
  int i = 0;
  for (DType dtype : {DType::Float32, DType::Float16, DType::BFloat16, DType::Float64, DType::Int64, DType::Int32,
                      DType::UInt8, DType::Bool}) {
    Tensor t = arange(0, 24).to(dtype).reshape({2, 3, 4});
    tensors[std::string(dtype_name(dtype))] = t;
    tensors["view_" + std::to_string(i++)] = t.transpose(0, 2);  // not contiguous: written in row-major order
  }
  tensors["scalar"] = scalar_tensor(3.5);
  tensors["empty"] = zeros({0, 5});
  const fs::path path = dir_ / "all.safetensors";
  save_safetensors(path.string(), tensors, {{"format", "pt"}, {"note", "every dtype"}});
  const SafetensorsFile loaded = load_safetensors(path.string());
  ASSERT_EQ(loaded.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(loaded.tensors.count(name)) << name;
    EXPECT_TRUE(same_bytes(loaded.tensors.at(name), t)) << name;
  }
  EXPECT_EQ(loaded.metadata.at("format"), "pt");
  EXPECT_EQ(loaded.metadata.at("note"), "every dtype");
  const std::string bytes = bytes_of(path);
  std::uint64_t header = 0;
  for (int b = 7; b >= 0; --b) header = (header << 8) | static_cast<unsigned char>(bytes[b]);
  EXPECT_EQ((8 + header) % 8, 0u) << "the data starts 8-byte aligned";
  EXPECT_NE(bytes.find(R"("F32")"), std::string::npos);
  EXPECT_NE(bytes.find(R"("BF16")"), std::string::npos);
}

// A writer killed at any moment leaves the previous file, whole: the new one is written beside
// it and renamed over it.
TEST_F(Safetensors, ASigkillMidWriteLeavesThePreviousFileWhole) {
  const fs::path path = dir_ / "weights.safetensors";
  save_safetensors(path.string(), {{"w", full({1024, 1024}, -1.0)}});
  // Made before the fork: the writer only writes (no allocation or thread pool after fork()).
  const std::map<std::string, Tensor> versions[2] = {{{"w", full({1024, 1024}, 1.0)}},
                                                     {{"w", full({1024, 1024}, 2.0)}}};
  for (int attempt = 0; attempt < 5; ++attempt) {
    const pid_t writer = fork();
    if (writer == 0) {
      for (int version = 0;; version ^= 1) save_safetensors(path.string(), versions[version]);
    }
    usleep(20000 + attempt * 7000);
    kill(writer, SIGKILL);
    waitpid(writer, nullptr, 0);
    const SafetensorsFile loaded = load_safetensors(path.string());  // throws if damaged
    const Tensor w = loaded.tensors.at("w");
    ASSERT_EQ(w.shape(), Shape({1024, 1024}));
    const float first = w.data_ptr<float>()[0];
    EXPECT_TRUE(first == -1.0f || first == 1.0f || first == 2.0f) << first;
    EXPECT_EQ(w.data_ptr<float>()[1024 * 1024 - 1], first) << "one version, not a mix";
  }
}

TEST_F(Safetensors, DamagedFilesAreDataErrorsNamingTheFileTheTensorAndTheOffset) {
  const fs::path good = dir_ / "good.safetensors";
  save_safetensors(good.string(), {{"a", ones({4, 4})}, {"b", zeros({8})}});
  const std::string bytes = bytes_of(good);

  const fs::path cut = dir_ / "cut.safetensors";
  write_bytes(cut, bytes.substr(0, bytes.size() - 10));
  std::string why = refusal(cut);
  EXPECT_NE(why.find(cut.string()), std::string::npos) << why;
  EXPECT_NE(why.find("truncated"), std::string::npos) << why;

  write_bytes(cut, bytes.substr(0, 5));
  EXPECT_NE(refusal(cut).find("too short for the 8-byte header length at offset 0"), std::string::npos);

  std::string huge = bytes;
  huge[6] = '\x7f';  // a header length of petabytes
  write_bytes(cut, huge);
  EXPECT_NE(refusal(cut).find("header length at offset 0"), std::string::npos) << refusal(cut);

  // Crafted headers: {header, data, what the error must say}.
  const struct {
    std::string header, data, says;
  } crafted[] = {
      {"{not json", "", "not valid JSON"},
      {R"({"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})", "\1",
       "tensor 'x': dtype F8_E4M3 is not one accel has"},
      {R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", std::string(8, '\0'),
       "tensor 'x': shape [3] of F32 needs 12 bytes"},
      {R"({"x": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},)"
       R"( "y": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}})",
       std::string(3, '\0'), "overlapping or gapped"},
      {R"({"x": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})", std::string(5, '\0'),
       "3 bytes after the last tensor"},
  };
  for (const auto& c : crafted) {
    const std::string said = refusal(with_header(c.header, c.data));
    EXPECT_NE(said.find(c.says), std::string::npos) << c.header << " -> " << said;
  }
  EXPECT_NE(refusal(dir_ / "missing.safetensors").find("cannot open"), std::string::npos);
}
