#include "accel/data/train_test_data.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "accel/data/csv.h"
#include "accel/data/npy.h"

namespace accel::data {
namespace {

// More classes than this is a labelling mistake (an id column, a regression target), not a task.
constexpr std::int64_t kMaxClasses = std::int64_t{1} << 20;

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// One set from an .npz's arrays: images flattened to [N, features], labels to int64 [N].
LabelledImages from_arrays(const std::map<std::string, Tensor>& arrays, const std::string& path,
                           const std::string& x_name, const std::string& y_name) {
  const auto find = [&](const std::string& name) {
    const auto it = arrays.find(name);
    if (it == arrays.end()) {
      throw DataError(path + " has no array '" + name + "' (Keras's layout: x_train, y_train, x_test, y_test)");
    }
    return it->second;
  };
  const Tensor x = find(x_name), y = find(y_name);
  const std::string x_file = path + " member " + x_name, y_file = path + " member " + y_name;
  if (x.dim() < 2) throw DataError(x_file + " has shape " + x.shape().to_string() + ": expected [samples, ...]");
  if (x.shape()[0] == 0) throw DataError(x_file + " holds no samples (shape " + x.shape().to_string() + ")");
  if (x.dtype() != DType::UInt8 && x.dtype() != DType::Float32 && x.dtype() != DType::Float64) {
    throw DataError(x_file + " is " + std::string(dtype_name(x.dtype())) + ": expected uint8 pixels or floats");
  }
  const DType label_type = y.dtype();
  if (y.dim() != 1 || (label_type != DType::Int64 && label_type != DType::Int32 && label_type != DType::UInt8)) {
    throw DataError(y_file + " is " + std::string(dtype_name(y.dtype())) + " " + y.shape().to_string() +
                    ": expected integer class indices [samples]");
  }
  const Tensor images = x.dtype() == DType::UInt8 ? x : x.to(DType::Float32);
  return {images.reshape({x.shape()[0], -1}).contiguous(), y.to(DType::Int64), x_file, y_file};
}

void check(const LabelledImages& set, const char* role) {
  if (set.images.shape()[0] == 0) throw DataError(set.images_file + " holds no samples: nothing to " + role);
  if (set.labels.shape()[0] != set.images.shape()[0]) {
    throw DataError(set.images_file + " holds " + std::to_string(set.images.shape()[0]) + " samples but " +
                    set.labels_file + " holds " + std::to_string(set.labels.shape()[0]) + " labels");
  }
  const auto labels = set.labels.to_vector<std::int64_t>();
  if (const auto low = std::min_element(labels.begin(), labels.end()); *low < 0) {
    throw DataError(set.labels_file + ": label " + std::to_string(*low) + " at index " +
                    std::to_string(low - labels.begin()) + " is negative (labels are class indices)");
  }
  if (set.images.dtype() == DType::Float32) {
    const float* values = set.images.data_ptr<float>();
    const std::int64_t width = set.images.shape()[1];
    for (std::int64_t i = 0; i < set.images.numel(); ++i) {
      if (!std::isfinite(values[i])) {
        throw DataError(set.images_file + ": sample " + std::to_string(i / width) + " holds " +
                        std::to_string(values[i]) + " at feature " + std::to_string(i % width));
      }
    }
  }
}

}  // namespace

TrainTestData load_train_test(const std::string& data, const std::string& test_data) {
  TrainTestData out;
  if (ends_with(data, ".npz")) {
    if (!test_data.empty()) throw ValueError("--test-data goes with a .csv --data; an .npz holds both sets");
    const auto arrays = read_npz(data);
    out.train = from_arrays(arrays, data, "x_train", "y_train");
    out.test = from_arrays(arrays, data, "x_test", "y_test");
  } else if (ends_with(data, ".csv")) {
    if (test_data.empty())
      throw ValueError("--data " + data + " is the training set: pass the test set as --test-data");
    const LabelledTable train = read_labelled_csv(data), test = read_labelled_csv(test_data);
    out.train = {train.features, train.labels, data, data};
    out.test = {test.features, test.labels, test_data, test_data};
  } else {
    if (!test_data.empty()) throw ValueError("--test-data goes with a .csv --data; an IDX folder holds both sets");
    if (!data.empty() && std::filesystem::is_regular_file(data)) {
      throw ValueError("--data " + data + ": a file must be an .npz or a .csv; IDX files are given by their folder");
    }
    out.train = load_fashion_mnist(data, true);
    out.test = load_fashion_mnist(data, false);
  }
  check(out.train, "train on");
  check(out.test, "test on");
  if (out.test.images.shape()[1] != out.train.images.shape()[1]) {
    throw DataError(out.test.images_file + " has " + std::to_string(out.test.images.shape()[1]) +
                    " values per sample but " + out.train.images_file + " has " +
                    std::to_string(out.train.images.shape()[1]) +
                    ": the test samples must have the training samples' size");
  }
  if (out.test.images.dtype() != out.train.images.dtype()) {
    throw DataError(out.test.images_file + " holds " + std::string(dtype_name(out.test.images.dtype())) + " but " +
                    out.train.images_file + " holds " + std::string(dtype_name(out.train.images.dtype())) +
                    ": both sets must be pixels (uint8) or both floats");
  }
  for (const LabelledImages* set : {&out.train, &out.test}) {
    const auto labels = set->labels.to_vector<std::int64_t>();
    const auto high = std::max_element(labels.begin(), labels.end());
    if (*high >= kMaxClasses) {
      throw DataError(set->labels_file + ": label " + std::to_string(*high) + " at index " +
                      std::to_string(high - labels.begin()) + " is not a class index accel takes (below " +
                      std::to_string(kMaxClasses) + ")");
    }
    out.classes = std::max(out.classes, 1 + *high);
  }
  return out;
}

}  // namespace accel::data
