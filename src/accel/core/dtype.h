// DType: the element types a tensor can hold, with their sizes and names.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace accel {

enum class DType { Float32, Float16, BFloat16, Float64, Int64, Int32, UInt8, Bool };

// Bytes per element.
std::size_t element_size(DType dtype);

// "float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool".
std::string_view dtype_name(DType dtype);

// Parses the names above (and "float", "half", "long", "int" as PyTorch spells them);
// throws DTypeError listing the valid names otherwise.
DType parse_dtype(std::string_view name);

bool is_floating_point(DType dtype);
bool is_integral(DType dtype);  // int64, int32, uint8 (not bool)

// PyTorch's result type of an op on two tensors: a floating type wins over integers and bool;
// among floats the wider wins, and bfloat16 with float16 gives float32; among integers the
// wider wins (uint8 with int32 gives int32); bool gives way to everything.
DType promote_types(DType a, DType b);

}  // namespace accel
