// Reductions (sum, mean, argmax) over any set of dims, via the [outer, reduced, inner] kernels.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "accel/autograd/grad_mode.h"
#include "accel/autograd/node.h"
#include "accel/backends/backend.h"
#include "accel/ops/autocast.h"
#include "accel/ops/checks.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

namespace accel {
namespace {

struct Reduction {
  std::vector<bool> reduced;           // per input dim
  std::vector<std::int64_t> kept;      // output sizes with keepdim
  std::vector<std::int64_t> squeezed;  // output sizes without keepdim
  std::int64_t reduced_count = 1;
};

Reduction plan(const Tensor& a, const std::vector<std::int64_t>& dims, const char* op) {
  Reduction r;
  r.reduced.assign(a.dim(), dims.empty());
  for (std::int64_t d : dims) {
    const std::size_t axis = normalize_dim(d, a.dim(), op);
    if (r.reduced[axis]) throw ShapeError(std::string(op) + ": dim " + std::to_string(d) + " appears twice");
    r.reduced[axis] = true;
  }
  for (std::size_t i = 0; i < a.dim(); ++i) {
    if (r.reduced[i]) {
      r.kept.push_back(1);
      r.reduced_count *= a.shape()[i];
    } else {
      r.kept.push_back(a.shape()[i]);
      r.squeezed.push_back(a.shape()[i]);
    }
  }
  return r;
}

// Sums the reduced dims of a contiguous tensor into `out` (keepdim layout). When the reduced
// dims form one block, the kernel reads the input in place; otherwise they are permuted last.
void run_sum(const Tensor& a, const Reduction& r, Tensor& out) {
  std::size_t first = a.dim(), last = 0;
  for (std::size_t i = 0; i < a.dim(); ++i) {
    if (r.reduced[i]) {
      first = std::min(first, i);
      last = i;
    }
  }
  Backend& be = backend_for(a.device());
  const auto run = [&](const Tensor& in, std::int64_t outer, std::int64_t reduced, std::int64_t inner) {
    be.sum(desc_as(in, {outer, reduced, inner}, "sum"), desc_as(out, {outer, inner}, "sum"), stream_of(out));
  };
  if (first == a.dim()) {  // no dims (0-dim input): a copy
    run(a.contiguous(), a.numel(), 1, 1);
    return;
  }
  bool block = true;
  for (std::size_t i = first; i <= last; ++i) block = block && r.reduced[i];
  if (block) {
    const Tensor in = a.contiguous();
    std::int64_t outer = 1, inner = 1;
    for (std::size_t i = 0; i < first; ++i) outer *= a.shape()[i];
    for (std::size_t i = last + 1; i < a.dim(); ++i) inner *= a.shape()[i];
    run(in, outer, r.reduced_count, inner);
    return;
  }
  std::vector<std::int64_t> order;
  for (std::size_t i = 0; i < a.dim(); ++i)
    if (!r.reduced[i]) order.push_back(static_cast<std::int64_t>(i));
  for (std::size_t i = 0; i < a.dim(); ++i)
    if (r.reduced[i]) order.push_back(static_cast<std::int64_t>(i));
  const Tensor in = a.permute(order).contiguous();
  std::int64_t outer = 1;  // the kept dims' product (a.numel() / reduced_count fails for an empty reduced dim)
  for (std::size_t i = 0; i < a.dim(); ++i)
    if (!r.reduced[i]) outer *= a.shape()[i];
  run(in, outer, r.reduced_count, 1);
}

}  // namespace

Tensor sum(const Tensor& a_, const std::vector<std::int64_t>& dims, bool keepdim) {
  const Tensor a = amp::autocast_input(a_, amp::CastPolicy::Float32);
  const Reduction r = plan(a, dims, "sum");
  if (!is_floating_point(a.dtype())) {
    const Tensor wide = a.to(DType::Int64);  // bool/uint8/int32 sums count in int64, as PyTorch
    Tensor out = empty(Shape(r.kept), DType::Int64, a.device());
    run_sum(wide, r, out);
    return keepdim ? out : out.view(r.squeezed);
  }
  Tensor out = empty(Shape(r.kept), a.dtype(), a.device());
  {
    autograd::NoGradGuard no_grad;  // internal permutes/copies are not part of the tape
    run_sum(a, r, out);
  }
  if (!keepdim) out = out.view(r.squeezed);
  autograd::record("SumBackward", out, {a},
                   [in_shape = a.shape(), kept = r.kept](const Tensor& g, const std::vector<bool>&) {
                     return std::vector<Tensor>{g.reshape(kept).expand(in_shape)};
                   });
  return out;
}

Tensor sum(const Tensor& a) { return sum(a, {}, false); }

Tensor mean(const Tensor& a, const std::vector<std::int64_t>& dims, bool keepdim) {
  detail::check_floating("mean", a, "input");
  const Reduction r = plan(a, dims, "mean");
  const double scale = r.reduced_count == 0 ? std::nan("") : 1.0 / static_cast<double>(r.reduced_count);
  if (a.dtype() == DType::BFloat16 || a.dtype() == DType::Float16) {
    // Sum and scale in float32, one rounding at the end, as PyTorch's mean (its opmath type);
    // rounding the sum first would round twice.
    return mul(sum(a.to(DType::Float32), dims, keepdim), scale).to(a.dtype());
  }
  return mul(sum(a, dims, keepdim), scale);
}

Tensor mean(const Tensor& a) { return mean(a, {}, false); }

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  if (shape.ndim() > a.dim()) {
    throw ShapeError("sum_to: cannot reduce " + a.shape().to_string() + " to the larger " + shape.to_string());
  }
  const std::size_t lead = a.dim() - shape.ndim();
  std::vector<std::int64_t> dims;
  for (std::size_t i = 0; i < a.dim(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && a.shape()[i] != 1)) dims.push_back(static_cast<std::int64_t>(i));
  }
  return sum(a, dims, true).reshape(shape.sizes());
}

Tensor argmax(const Tensor& a, std::int64_t dim, bool keepdim) {
  if (a.dtype() == DType::Bool) return argmax(a.to(DType::UInt8), dim, keepdim);
  const std::size_t axis = normalize_dim(dim, a.dim(), "argmax");
  if (a.shape()[axis] == 0)
    throw ShapeError("argmax: dim " + std::to_string(dim) + " of " + a.shape().to_string() + " is empty");
  const Tensor in = a.contiguous();
  std::int64_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < axis; ++i) outer *= a.shape()[i];
  for (std::size_t i = axis + 1; i < a.dim(); ++i) inner *= a.shape()[i];
  std::vector<std::int64_t> sizes = a.shape().sizes();
  sizes[axis] = 1;
  Tensor out = empty(Shape(sizes), DType::Int64, a.device());
  backend_for(a.device())
      .argmax(desc_as(in, {outer, a.shape()[axis], inner}, "argmax"), desc_as(out, {outer, inner}, "argmax"),
              stream_of(out));
  if (!keepdim) sizes.erase(sizes.begin() + static_cast<std::ptrdiff_t>(axis));
  return keepdim ? out : out.view(sizes);
}

Tensor eq(const Tensor& a, const Tensor& b) {
  detail::check_same_device("eq", a, b);
  const DType common = promote_types(a.dtype(), b.dtype());
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "eq");
  const Tensor x = a.detach().to(common).expand(shape).contiguous();
  const Tensor y = b.detach().to(common).expand(shape).contiguous();
  Tensor out = empty(shape, DType::Bool, a.device());
  backend_for(a.device()).eq(desc(x, "eq"), desc(y, "eq"), desc(out, "eq"), stream_of(out));
  return out;
}

}  // namespace accel
