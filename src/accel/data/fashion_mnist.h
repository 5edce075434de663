// Fashion-MNIST: 60,000 training and 10,000 test images (28x28, uint8) with labels 0-9, read
// from Debian's dataset-fashion-mnist package or any folder with the four IDX files.
#pragma once

#include <string>

#include "accel/tensor/tensor.h"

namespace accel::data {

inline constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";

struct LabelledImages {
  Tensor images;                             // uint8 [N, 784], row-major pixels
  Tensor labels;                             // int64 [N], 0-9
  std::string images_file{}, labels_file{};  // where they were read, for errors about them
};

// Loads the "train" or "t10k" split from `dir` (empty: the Debian package's folder). Throws
// DataError saying how to install the data or pass --data when files are missing, and naming
// the file for bad magic, truncation, mismatched counts or a label outside 0-9.
LabelledImages load_fashion_mnist(const std::string& dir, bool train);

// The class names, index = label.
const char* fashion_mnist_class_name(int label);

}  // namespace accel::data
