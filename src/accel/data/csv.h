// Labelled samples from a CSV file of numbers, one sample per row: a label column (by header
// name, default "label", or the first column when there is no header) and feature columns, as
// Kaggle's fashion-mnist_train.csv (label,pixel1,...,pixel784). Features that are all integers
// in 0..255 are pixels and come back as uint8 (scaled to [0, 1] later, like IDX images); others
// as float32.
#pragma once

#include <string>

#include "accel/tensor/tensor.h"

namespace accel::data {

struct LabelledTable {
  Tensor features;  // uint8 or float32 [N, F]
  Tensor labels;    // int64 [N]
};

// Throws DataError naming the file, the line and the column for a value that is not a number,
// a row with another number of columns, a label that is not a non-negative integer, or no rows.
LabelledTable read_labelled_csv(const std::string& path, const std::string& label_column = "label");

}  // namespace accel::data
