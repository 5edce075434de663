// Data from where users keep it: NumPy's .npy/.npz (read against files NumPy itself wrote),
// CSV, and `accel train --data` with each; every bad file fails naming the file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../support/command.h"

#include "accel/data/csv.h"
#include "accel/data/npy.h"
#include "accel/data/train_test_data.h"

using namespace accel;
using accel::testing::run_command;

namespace {

class DataSources : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (std::filesystem::temp_directory_path() / ("accel_data_sources_" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir_);
    const auto made =
        run_command("/usr/bin/python3 " + std::string(ACCEL_SOURCE_DIR) + "/tests/data/make_numpy_files.py " + dir_);
    ASSERT_EQ(made.status, 0) << made.output;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }

  static void expect_data_error(const std::function<void()>& load, const std::string& file, const std::string& why) {
    try {
      load();
      ADD_FAILURE() << "accepted " << file;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  }
  static std::string write(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
    return path(name);
  }

  static inline std::string dir_;
};

}  // namespace

TEST_F(DataSources, NpyArraysReadAsNumPyWroteThem) {
  const Tensor f32 = data::read_npy(path("f32.npy"));
  EXPECT_EQ(f32.shape(), (Shape{3, 4}));
  EXPECT_EQ(f32.to_vector<float>()[5], 1.25f);
  const Tensor u8 = data::read_npy(path("u8.npy"));
  EXPECT_EQ(u8.dtype(), DType::UInt8);
  EXPECT_EQ(u8.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(u8.to_vector<std::uint8_t>()[7], 7);
  EXPECT_EQ(data::read_npy(path("i64.npy")).to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{-3, 0, 7, 1LL << 40, 5}));
  EXPECT_EQ(data::read_npy(path("f64.npy")).to_vector<double>(), (std::vector<double>{0.1, -2.5}));
  EXPECT_EQ(data::read_npy(path("bool.npy")).dtype(), DType::Bool);
  EXPECT_EQ(data::read_npy(path("scalar.npy")).dim(), 0);
}

TEST_F(DataSources, BadNpyFilesNameTheFileAndTheFix) {
  expect_data_error([] { data::read_npy(path("fortran.npy")); }, "fortran.npy", "np.ascontiguousarray");
  expect_data_error([] { data::read_npy(path("big_endian.npy")); }, "big_endian.npy", "'>f4'");
  expect_data_error([] { data::read_npy(path("complex.npy")); }, "complex.npy", "astype");
  expect_data_error([] { data::read_npy(path("truncated.npy")); }, "truncated.npy", "truncated or damaged");
  expect_data_error([] { data::read_npy(write("text.npy", "hello, world")); }, "text.npy", "\\x93NUMPY");
  expect_data_error([] { data::read_npy(path("missing.npy")); }, "missing.npy", "cannot open");
  expect_data_error([] { data::read_npz(write("not_zip.npz", "PK but not really")); }, "not_zip.npz", "zip");
}

TEST_F(DataSources, NpzInKerasLayoutGivesBothSetsFlattened) {
  for (const char* name : {"keras.npz", "compressed.npz"}) {
    const data::TrainTestData sets = data::load_train_test(path(name));
    EXPECT_EQ(sets.train.images.shape(), (Shape{400, 16})) << name;
    EXPECT_EQ(sets.test.images.shape(), (Shape{100, 16})) << name;
    EXPECT_EQ(sets.train.labels.dtype(), DType::Int64);
    EXPECT_EQ(sets.classes, 4);
    EXPECT_EQ(sets.train.images_file, path(name) + " member x_train");
  }
  EXPECT_EQ(data::load_train_test(path("keras.npz")).train.images.dtype(), DType::UInt8);
  EXPECT_EQ(data::load_train_test(path("compressed.npz")).train.images.dtype(), DType::Float32);
  expect_data_error([] { data::load_train_test(path("no_test.npz")); }, "no_test.npz", "x_test");
  expect_data_error([] { data::load_train_test(path("narrow_test.npz")); }, "narrow_test.npz member x_test",
                    "12 values per sample");
}

TEST_F(DataSources, CsvWithAHeaderOrWithoutOne) {
  const auto table = data::read_labelled_csv(path("train.csv"));
  EXPECT_EQ(table.features.shape(), (Shape{400, 16}));
  EXPECT_EQ(table.features.dtype(), DType::UInt8);  // integers 0..255: pixels
  const auto floats = data::read_labelled_csv(write("floats.csv", "1,0.5,-2\n0,1e-3,4\n"));
  EXPECT_EQ(floats.features.dtype(), DType::Float32);
  EXPECT_EQ(floats.labels.to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 0}));
  EXPECT_EQ(floats.features.to_vector<float>(), (std::vector<float>{0.5f, -2.0f, 1e-3f, 4.0f}));
  const auto named = data::read_labelled_csv(write("named.csv", "a,b,class\n1,2,3\n4,5,0\n"), "class");
  EXPECT_EQ(named.labels.to_vector<std::int64_t>(), (std::vector<std::int64_t>{3, 0}));
  expect_data_error([] { data::read_labelled_csv(write("bad_value.csv", "label,x\n1,2\n0,abc\n")); }, "bad_value.csv",
                    "line 3, column 2: 'abc'");
  expect_data_error([] { data::read_labelled_csv(write("ragged.csv", "1,2,3\n0,1\n")); }, "ragged.csv",
                    "line 2 has 2 columns");
  expect_data_error([] { data::read_labelled_csv(write("bad_label.csv", "1.5,2\n")); }, "bad_label.csv",
                    "not a class index");
  expect_data_error([] { data::read_labelled_csv(write("nan.csv", "1,nan\n")); }, "nan.csv", "not a finite number");
  expect_data_error([] { data::read_labelled_csv(write("header_only.csv", "label,x\n")); }, "header_only.csv",
                    "no rows");
  expect_data_error([] { data::read_labelled_csv(write("no_label.csv", "a,b\n1,2\n")); }, "no_label.csv",
                    "no column 'label'");
  EXPECT_THROW(data::load_train_test(path("train.csv")), ValueError);  // the test set is missing
  // An id column taken for labels would build a model of millions of classes: refused.
  write("ids.csv", "label,x\n0,1\n2000000,2\n");
  expect_data_error([] { data::load_train_test(path("ids.csv"), path("ids.csv")); }, "ids.csv",
                    "label 2000000 at index 1");
}

TEST_F(DataSources, AccelTrainTakesNpzAndCsv) {
  const std::string train = std::string(ACCEL_CLI_PATH) + " train --epochs 3 --threads 1 --device cpu --lr 0.01";
  const auto npz = run_command(train + " --data " + path("keras.npz"));
  ASSERT_EQ(npz.status, 0) << npz.output;
  EXPECT_NE(npz.output.find("16-256-4 MLP"), std::string::npos) << npz.output;
  const auto csv = run_command(train + " --data " + path("train.csv") + " --test-data " + path("test.csv"));
  ASSERT_EQ(csv.status, 0) << csv.output;
  // The same samples as the .npz: the same losses and accuracies (the timings differ).
  const auto results = [](const std::string& out) {
    std::string kept;
    for (std::size_t at = out.find("  loss "); at != std::string::npos; at = out.find("  loss ", at + 1)) {
      kept += out.substr(at, 13) + out.substr(out.find("test accuracy", at), 20) + "\n";
    }
    return kept;
  };
  EXPECT_EQ(results(csv.output), results(npz.output)) << csv.output << npz.output;
  const std::size_t last = csv.output.rfind("test accuracy ");
  ASSERT_NE(last, std::string::npos) << csv.output;
  EXPECT_GE(std::stod(csv.output.substr(last + 14, 6)), 0.9) << csv.output;
  const auto narrow = run_command(train + " --data " + path("narrow_test.npz"));
  EXPECT_EQ(narrow.status, 1) << narrow.output;
  EXPECT_NE(narrow.output.find("narrow_test.npz member x_test"), std::string::npos) << narrow.output;
}
