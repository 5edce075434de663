#include "accel/core/dtype.h"

#include "accel/core/error.h"

namespace accel {

std::size_t element_size(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return 4;
    case DType::Float16:
      return 2;
    case DType::BFloat16:
      return 2;
    case DType::Float64:
      return 8;
    case DType::Int64:
      return 8;
    case DType::Int32:
      return 4;
    case DType::UInt8:
      return 1;
    case DType::Bool:
      return 1;
  }
  throw DTypeError("element_size: unknown dtype value");
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "float32";
    case DType::Float16:
      return "float16";
    case DType::BFloat16:
      return "bfloat16";
    case DType::Float64:
      return "float64";
    case DType::Int64:
      return "int64";
    case DType::Int32:
      return "int32";
    case DType::UInt8:
      return "uint8";
    case DType::Bool:
      return "bool";
  }
  return "unknown";
}

DType parse_dtype(std::string_view name) {
  if (name == "float32" || name == "float") return DType::Float32;
  if (name == "float16" || name == "half") return DType::Float16;
  if (name == "bfloat16") return DType::BFloat16;
  if (name == "float64" || name == "double") return DType::Float64;
  if (name == "int64" || name == "long") return DType::Int64;
  if (name == "int32" || name == "int") return DType::Int32;
  if (name == "uint8") return DType::UInt8;
  if (name == "bool") return DType::Bool;
  throw DTypeError("unknown dtype '" + std::string(name) +
                   "': expected one of float32, float16, bfloat16, float64, int64, int32, uint8, bool");
}

bool is_floating_point(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float16 || dtype == DType::BFloat16 || dtype == DType::Float64;
}

bool is_integral(DType dtype) { return dtype == DType::Int64 || dtype == DType::Int32 || dtype == DType::UInt8; }

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (a == DType::Bool) return b;
  if (b == DType::Bool) return a;
  const bool fa = is_floating_point(a), fb = is_floating_point(b);
  if (fa != fb) return fa ? a : b;
  const auto rank = [](DType t) {
    switch (t) {
      case DType::UInt8:
        return 1;
      case DType::Int32:
        return 2;
      case DType::Int64:
        return 3;
      case DType::BFloat16:
      case DType::Float16:
        return 4;
      case DType::Float32:
        return 5;
      case DType::Float64:
        return 6;
      default:
        return 0;
    }
  };
  if (rank(a) == 4 && rank(b) == 4) return DType::Float32;  // bfloat16 with float16
  return rank(a) >= rank(b) ? a : b;
}

}  // namespace accel
