#include "accel/data/csv.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string_view>
#include <vector>

#include "accel/core/error.h"

namespace accel::data {
namespace {

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> cells;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= line.size(); ++i) {
    if (i == line.size() || line[i] == ',') {
      std::string_view cell = line.substr(start, i - start);
      while (!cell.empty() && (cell.front() == ' ' || cell.front() == '"')) cell.remove_prefix(1);
      while (!cell.empty() && (cell.back() == ' ' || cell.back() == '"' || cell.back() == '\r')) cell.remove_suffix(1);
      cells.push_back(cell);
      start = i + 1;
    }
  }
  return cells;
}

bool parse_number(std::string_view cell, double* out) {
  if (!cell.empty() && cell.front() == '+') cell.remove_prefix(1);
  const auto [end, error] = std::from_chars(cell.data(), cell.data() + cell.size(), *out);
  return error == std::errc() && end == cell.data() + cell.size() && !cell.empty();
}

}  // namespace

LabelledTable read_labelled_csv(const std::string& path, const std::string& label_column) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open it (" + std::strerror(errno) + ")");
  std::string line;
  std::size_t line_number = 0, columns = 0, label_at = 0;
  std::vector<float> features;  // a float holds every pixel value and halves a double's memory
  std::vector<std::int64_t> labels;
  bool pixels = true;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty() || line == "\r") continue;
    const auto cells = split(line);
    double value = 0;
    if (columns == 0) {  // the first row: a header when its label cell is not a number
      columns = cells.size();
      if (columns < 2)
        throw DataError(path + ": line 1 has " + std::to_string(columns) + " column; a label and features are needed");
      if (!parse_number(cells[0], &value) || std::any_of(cells.begin(), cells.end(), [&](std::string_view c) {
            double v;
            return !parse_number(c, &v);
          })) {
        const auto it = std::find(cells.begin(), cells.end(), label_column);
        if (it == cells.end()) {
          throw DataError(path + ": the header on line 1 has no column '" + label_column + "' for the labels");
        }
        label_at = static_cast<std::size_t>(it - cells.begin());
        continue;
      }
    }
    if (cells.size() != columns) {
      throw DataError(path + ": line " + std::to_string(line_number) + " has " + std::to_string(cells.size()) +
                      " columns, the first row " + std::to_string(columns));
    }
    for (std::size_t c = 0; c < columns; ++c) {
      if (!parse_number(cells[c], &value) || !std::isfinite(value)) {
        throw DataError(path + ": line " + std::to_string(line_number) + ", column " + std::to_string(c + 1) + ": '" +
                        std::string(cells[c]) + "' is not a finite number");
      }
      if (c == label_at) {
        if (value < 0 || value != std::floor(value) || value > 1e15) {
          throw DataError(path + ": line " + std::to_string(line_number) + ": label '" + std::string(cells[c]) +
                          "' is not a class index (an integer >= 0)");
        }
        labels.push_back(static_cast<std::int64_t>(value));
      } else {
        pixels = pixels && value >= 0 && value <= 255 && value == std::floor(value);
        features.push_back(static_cast<float>(value));
      }
    }
  }
  if (labels.empty()) throw DataError(path + ": no rows of data");
  const auto n = static_cast<std::int64_t>(labels.size());
  const auto f = static_cast<std::int64_t>(columns - 1);
  LabelledTable out{empty(Shape{n, f}, pixels ? DType::UInt8 : DType::Float32), from_vector(labels, {n})};
  if (pixels) {
    std::transform(features.begin(), features.end(), out.features.data_ptr<std::uint8_t>(),
                   [](float v) { return static_cast<std::uint8_t>(v); });
  } else {
    std::copy(features.begin(), features.end(), out.features.data_ptr<float>());
  }
  return out;
}

}  // namespace accel::data
