// Typed errors: library code reports every failure by throwing one of these, with the facts a
// user needs to fix it (the op, both shapes, the file, the device). It never aborts or exits.
#pragma once

#include <stdexcept>
#include <string>

namespace accel {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Shapes that do not fit the op: "linear: input [64, 28, 28] needs 2 dims ...".
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A dtype the op does not support, or two that do not match.
class DTypeError : public Error {
 public:
  using Error::Error;
};

// A device that is unknown, absent ("no CUDA device"), or mixed with another in one op.
class DeviceError : public Error {
 public:
  using Error::Error;
};

// Input data that is missing or malformed: the file and what is wrong with it.
class DataError : public Error {
 public:
  using Error::Error;
};

// An allocation the device could not serve: what was asked and what is left.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

// An argument with a value outside what the function accepts (negative size, lr < 0, ...).
class ValueError : public Error {
 public:
  using Error::Error;
};

}  // namespace accel
