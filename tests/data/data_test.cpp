#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "../support/command.h"

#include "accel/data/batch_prefetcher.h"
#include "accel/data/dataloader.h"
#include "accel/data/fashion_mnist.h"
#include "accel/data/idx.h"

using namespace accel;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir()
      : path_(fs::temp_directory_path() /
              ("accel_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::vector<unsigned char> idx_bytes(std::vector<std::uint32_t> dims, const std::vector<unsigned char>& values,
                                     unsigned char type = 0x08) {
  std::vector<unsigned char> out{0, 0, type, static_cast<unsigned char>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(d >> shift));
  }
  out.insert(out.end(), values.begin(), values.end());
  return out;
}

void write_raw(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

// A tiny Fashion-MNIST-shaped split: n images of 2x2 pixels.
void write_split(const TempDir& dir, const std::string& prefix, std::vector<unsigned char> labels) {
  std::vector<unsigned char> pixels;
  for (std::size_t i = 0; i < labels.size() * 4; ++i) pixels.push_back(static_cast<unsigned char>(i * 10 % 256));
  write_gz(dir.file(prefix + "-images-idx3-ubyte.gz"),
           idx_bytes({static_cast<std::uint32_t>(labels.size()), 2, 2}, pixels));
  write_gz(dir.file(prefix + "-labels-idx1-ubyte.gz"), idx_bytes({static_cast<std::uint32_t>(labels.size())}, labels));
}

template <typename E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Idx, ReadsPlainAndGzipFiles) {
  TempDir dir;
  const auto bytes = idx_bytes({2, 3}, {1, 2, 3, 4, 5, 6});
  write_raw(dir.file("plain.idx"), bytes);
  write_gz(dir.file("packed.idx.gz"), bytes);
  for (const auto& name : {"plain.idx", "packed.idx.gz"}) {
    const data::IdxArray a = data::read_idx(dir.file(name));
    EXPECT_EQ(a.dims, (std::vector<std::int64_t>{2, 3}));
    EXPECT_EQ(a.values, (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6}));
  }
}

TEST(Idx, BadInputIsADataErrorNamingTheFile) {
  TempDir dir;
  write_raw(dir.file("magic.idx"), {0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0});
  std::string message = error_of<DataError>([&] { data::read_idx(dir.file("magic.idx")); });
  EXPECT_NE(message.find("magic.idx"), std::string::npos) << message;
  EXPECT_NE(message.find("magic"), std::string::npos) << message;

  auto truncated = idx_bytes({10, 2}, {1, 2, 3});
  write_gz(dir.file("short.gz"), truncated);
  message = error_of<DataError>([&] { data::read_idx(dir.file("short.gz")); });
  EXPECT_NE(message.find("short.gz"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  EXPECT_NE(message.find("20 bytes"), std::string::npos) << message;

  write_raw(dir.file("header.idx"), {0, 0, 8});
  EXPECT_NE(error_of<DataError>([&] { data::read_idx(dir.file("header.idx")); }).find("truncated"), std::string::npos);

  write_raw(dir.file("float.idx"), idx_bytes({1}, {0, 0, 0, 0}, 0x0d));
  EXPECT_NE(error_of<DataError>([&] { data::read_idx(dir.file("float.idx")); }).find("element type"),
            std::string::npos);

  EXPECT_NE(error_of<DataError>([&] { data::read_idx(dir.file("absent.idx")); }).find("cannot open"),
            std::string::npos);
}

// A header whose sizes multiply past 64 bits (60000 x 2^31 x 2^31 wrapped to a small count and
// `accel train` died with SIGSEGV in the loader) is a DataError naming the file.
TEST(Idx, AHeaderWhoseSizesOverflowIsADataError) {
  TempDir dir;
  constexpr std::uint32_t k2to31 = 1u << 31;
  write_raw(dir.file("huge.idx"), idx_bytes({60000, k2to31, k2to31}, {1, 2, 3}));
  const std::string message = error_of<DataError>([&] { data::read_idx(dir.file("huge.idx")); });
  EXPECT_NE(message.find("huge.idx"), std::string::npos) << message;
  EXPECT_NE(message.find("60000 x 2147483648"), std::string::npos) << message;
  EXPECT_NE(message.find("corrupt"), std::string::npos) << message;
}

TEST(FashionMnist, LoadsASplitAndValidatesLabels) {
  TempDir dir;
  write_split(dir, "train", {0, 9, 3});
  const auto split = data::load_fashion_mnist(dir.str(), true);
  EXPECT_EQ(split.images.shape(), (Shape{3, 4}));
  EXPECT_EQ(split.labels.to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, 9, 3}));

  write_split(dir, "t10k", {1, 12});
  const std::string message = error_of<DataError>([&] { data::load_fashion_mnist(dir.str(), false); });
  EXPECT_NE(message.find("t10k-labels-idx1-ubyte.gz"), std::string::npos) << message;
  EXPECT_NE(message.find("label 12 at index 1"), std::string::npos) << message;
}

TEST(FashionMnist, MissingDatasetSaysHowToInstallOrPassData) {
  TempDir dir;
  const std::string message = error_of<DataError>([&] { data::load_fashion_mnist(dir.file("nothing"), true); });
  EXPECT_NE(message.find("apt-get install dataset-fashion-mnist"), std::string::npos) << message;
  EXPECT_NE(message.find("--data"), std::string::npos) << message;
}

TEST(FashionMnist, CountMismatchBetweenImagesAndLabels) {
  TempDir dir;
  write_split(dir, "train", {1, 2, 3});
  write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes({2}, {1, 2}));
  const std::string message = error_of<DataError>([&] { data::load_fashion_mnist(dir.str(), true); });
  EXPECT_NE(message.find("3 images"), std::string::npos) << message;
  EXPECT_NE(message.find("2 labels"), std::string::npos) << message;
}

TEST(DataLoader, SeededShuffleCoversEverySampleOnce) {
  const Tensor images = zeros({10, 4}, DType::UInt8);
  const Tensor labels = arange(10);
  data::DataLoader a(images, labels, {.batch_size = 3, .shuffle = true, .seed = 5});
  data::DataLoader b(images, labels, {.batch_size = 3, .shuffle = true, .seed = 5});
  EXPECT_EQ(a.size(), 4u);
  std::multiset<std::int64_t> seen;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a.batch_indices(i), b.batch_indices(i));
    for (std::int64_t v : a.batch(i).labels.to_vector<std::int64_t>()) seen.insert(v);
  }
  EXPECT_EQ(seen, (std::multiset<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(a.batch(3).inputs.shape(), (Shape{1, 4}));
  const auto first_order = a.batch_indices(0);
  a.next_epoch();
  EXPECT_NE(a.batch_indices(0), first_order);  // a new order (10! orders: a repeat is negligible)
  data::DataLoader dropping(images, labels, {.batch_size = 3, .drop_last = true});
  EXPECT_EQ(dropping.size(), 3u);
  EXPECT_THROW(dropping.batch(3), ValueError);
}

TEST(DataLoader, EveryPixelValueIsExactlyTheQuotientBy255) {
  std::vector<std::uint8_t> all(256);
  for (int v = 0; v < 256; ++v) all[static_cast<std::size_t>(v)] = static_cast<std::uint8_t>(v);
  data::DataLoader loader(from_vector(all, {1, 256}), zeros({1}, DType::Int64), {.batch_size = 1, .shuffle = false});
  const auto x = loader.batch(0).inputs.to_vector<float>();
  for (int v = 0; v < 256; ++v) ASSERT_EQ(x[static_cast<std::size_t>(v)], static_cast<float>(v) / 255.0f) << v;
}

TEST(DataLoader, ScalesPixelsToUnitRangeLikeToTensor) {
  const Tensor images = from_vector<std::uint8_t>({0, 51, 128, 255}, {1, 4});
  data::DataLoader loader(images, zeros({1}, DType::Int64), {.batch_size = 1, .shuffle = false});
  const auto x = loader.batch(0).inputs.to_vector<float>();
  EXPECT_EQ(x, (std::vector<float>{0.0f, 51.0f / 255.0f, 128.0f / 255.0f, 1.0f}));
  EXPECT_THROW(data::DataLoader(images, zeros({2}, DType::Int64), {}), ShapeError);
  EXPECT_THROW(data::DataLoader(zeros({1, 4}, DType::Float64), zeros({1}, DType::Int64), {}), DTypeError);
  EXPECT_THROW(data::DataLoader(images, zeros({1}, DType::Int64), {.batch_size = 0}), ValueError);
}

// batch_into writes a batch into tensors the caller owns (a captured step's input buffers): the
// same values as batch(), in the same memory; a batch that does not fit leaves them alone.
TEST(DataLoader, BatchIntoFillsTheCallersTensorsOrSaysTheyDoNotFit) {
  Generator gen(6);
  for (const Tensor& inputs : {randn({10, 3}, gen), randint(0, 256, {10, 3}, gen).to(DType::UInt8)}) {
    data::DataLoader loader(inputs, arange(10), {.batch_size = 4, .shuffle = true, .seed = 2});
    data::Batch out{full({4, 3}, -1.0), full({4}, -1.0, DType::Int64)};
    const void* where = out.inputs.raw_data();
    for (std::size_t i = 0; i < 2; ++i) {
      ASSERT_TRUE(loader.batch_into(i, out));
      EXPECT_EQ(out.inputs.raw_data(), where);
      const data::Batch expected = loader.batch(i);
      EXPECT_EQ(out.inputs.to_vector<float>(), expected.inputs.to_vector<float>()) << "batch " << i;
      EXPECT_EQ(out.labels.to_vector<std::int64_t>(), expected.labels.to_vector<std::int64_t>()) << "batch " << i;
    }
    const std::vector<float> before = out.inputs.to_vector<float>();
    EXPECT_FALSE(loader.batch_into(2, out));  // the short last batch: 2 rows
    data::Batch wrong_dtype{zeros({4, 3}, DType::Float64), zeros({4}, DType::Int64)};
    EXPECT_FALSE(loader.batch_into(0, wrong_dtype));
    data::Batch wrong_labels{zeros({4, 3}), zeros({4}, DType::Int32)};
    EXPECT_FALSE(loader.batch_into(0, wrong_labels));
    data::Batch strided{zeros({3, 4}).t(), zeros({4}, DType::Int64)};
    EXPECT_FALSE(loader.batch_into(0, strided));
    EXPECT_EQ(out.inputs.to_vector<float>(), before);
    EXPECT_THROW(loader.batch_into(3, out), ValueError);  // past the end, as batch() says
  }
}

TEST(BatchPrefetcher, DeliversTheLoadersBatchesInOrderFromAnyStart) {
  Generator gen(4);
  const Tensor x = randn({50, 3}, gen);
  std::vector<std::int64_t> labels(50);
  std::iota(labels.begin(), labels.end(), 0);
  const data::TensorDataset dataset{x, from_vector(labels, {50})};
  data::DataLoader loader(dataset, {.batch_size = 4, .shuffle = true, .seed = 9});
  EXPECT_EQ(loader.num_samples(), 50);
  {
    data::BatchPrefetcher batches(loader, 3, 2);
    for (std::size_t i = 3; i < loader.size(); ++i) {
      const data::Batch expected = loader.batch(i), got = batches.next();
      EXPECT_EQ(got.inputs.to_vector<float>(), expected.inputs.to_vector<float>()) << "batch " << i;
      EXPECT_EQ(got.labels.to_vector<std::int64_t>(), expected.labels.to_vector<std::int64_t>()) << "batch " << i;
    }
    EXPECT_THROW(batches.next(), ValueError);
  }
  // Stopped after one batch with more queued: the thread ends with it, nothing hangs.
  { data::BatchPrefetcher(loader, 0, 3).next(); }
  EXPECT_THROW(data::BatchPrefetcher(loader, 0, 0), ValueError);
}

// The cases through `accel train`: test images of another size, an empty training set.
// Each fails before the first step and names the files.
TEST(TrainData, BadIdxSetsFailBeforeTrainingNamingTheFiles) {
  const std::string train = std::string(ACCEL_CLI_PATH) + " train --epochs 1 --threads 1 --device cpu --data ";
  TempDir other_size;
  write_split(other_size, "train", {1, 0, 2, 1});
  write_gz(other_size.file("t10k-images-idx3-ubyte.gz"), idx_bytes({2, 2, 3}, std::vector<unsigned char>(12, 7)));
  write_gz(other_size.file("t10k-labels-idx1-ubyte.gz"), idx_bytes({2}, {0, 1}));
  auto result = accel::testing::run_command(train + other_size.str());
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find(other_size.file("t10k-images-idx3-ubyte.gz") + " has 6 values per sample but " +
                               other_size.file("train-images-idx3-ubyte.gz") + " has 4"),
            std::string::npos)
      << result.output;
  EXPECT_EQ(result.output.find("epoch 1"), std::string::npos) << result.output;

  TempDir empty_train;
  write_split(empty_train, "train", {});
  write_split(empty_train, "t10k", {0, 1});
  result = accel::testing::run_command(train + empty_train.str());
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find(empty_train.file("train-images-idx3-ubyte.gz") + " holds no samples"), std::string::npos)
      << result.output;
}
