// take_rows_into: a batch's rows gathered from a data set on its device (backend gather_rows).
#include "accel/ops/checks.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

namespace accel {

void take_rows_into(const Tensor& source, const Tensor& rows, const Tensor& out) {
  detail::check_same_device("take_rows_into", source, rows);
  detail::check_same_device("take_rows_into", source, out);
  if (rows.dtype() != DType::Int64 || rows.dim() != 1) {
    throw DTypeError("take_rows_into: rows must be a 1-d int64 tensor, got " + std::string(dtype_name(rows.dtype())) +
                     " " + rows.shape().to_string());
  }
  if (source.dim() < 1) throw ShapeError("take_rows_into: the source needs a first dimension, got a scalar");
  std::vector<std::int64_t> sizes = source.shape().sizes();
  sizes[0] = rows.shape()[0];
  // uint8 images may also be gathered as float32 in [0, 1], as the host loader's batches.
  const bool pixels = source.dtype() == DType::UInt8 && out.dtype() == DType::Float32;
  if (out.shape() != Shape(sizes) || (out.dtype() != source.dtype() && !pixels)) {
    throw ShapeError("take_rows_into: out must be " + std::string(dtype_name(source.dtype())) +
                     (source.dtype() == DType::UInt8 ? " (or float32: pixels scaled to [0, 1])" : "") + " " +
                     Shape(sizes).to_string() + ", got " + std::string(dtype_name(out.dtype())) + " " +
                     out.shape().to_string());
  }
  if (!source.is_contiguous() || !out.is_contiguous() || !rows.is_contiguous()) {
    throw ShapeError("take_rows_into: source, rows and out must be contiguous");
  }
  const std::int64_t width = source.shape()[0] ? source.numel() / source.shape()[0] : 0;
  backend_for(source.device())
      .gather_rows(desc_as(source, {source.shape()[0], width}, "take_rows_into"), desc(rows, "take_rows_into"),
                   desc_as(out, {rows.shape()[0], width}, "take_rows_into"), stream_of(out));
}

}  // namespace accel
