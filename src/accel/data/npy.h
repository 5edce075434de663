// NumPy's .npy files and .npz archives (numpy.save / savez / savez_compressed), the format
// Keras's data sets ship in (mnist.npz: x_train, y_train, x_test, y_test). Read into tensors:
// float32/float64/uint8/int32/int64/bool little-endian, C order (a Fortran-order array is an
// error saying to save it with np.ascontiguousarray). .npz members are read with libzip (stored
// or deflated), a library made for zip rather than a parser of our own.
#pragma once

#include <map>
#include <string>

#include "accel/tensor/tensor.h"

namespace accel::data {

// Throws DataError naming the file (and the member of an .npz) and what is wrong: not NumPy's
// magic, an unsupported dtype, big-endian data, a header that is not a dict, truncated data.
Tensor read_npy(const std::string& path);
// Every array of an .npz by name without ".npy" ("x_train").
std::map<std::string, Tensor> read_npz(const std::string& path);
// The array from NumPy's bytes (`what` names them in errors).
Tensor parse_npy(const std::string& bytes, const std::string& what);

}  // namespace accel::data
