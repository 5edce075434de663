// A training and a test set from wherever a user keeps them, for `accel train --data`:
//   a folder   the four IDX files of Fashion-MNIST (or MNIST) by their usual names; empty: the
//              folder of Debian's dataset-fashion-mnist
//   an .npz    Keras's layout (mnist.npz, fashion_mnist.npz): x_train, y_train, x_test, y_test
//   a .csv     the training set (data/csv.h), with `test_data` the test set's CSV
// Checked before anything trains: both sets have samples, as many labels as samples, the same
// values per sample, finite values, labels that are class indices; each error names the file.
#pragma once

#include <string>

#include "accel/data/fashion_mnist.h"

namespace accel::data {

struct TrainTestData {
  LabelledImages train, test;  // images uint8 (pixels) or float32, [N, features]
  std::int64_t classes = 0;    // 1 + the largest label of either set
};

TrainTestData load_train_test(const std::string& data, const std::string& test_data = "");

}  // namespace accel::data
