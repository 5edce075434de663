// Softmax, log-softmax and the losses.
#include "accel/autograd/node.h"
#include "accel/backends/backend.h"
#include "accel/ops/checks.h"
#include "accel/ops/ops.h"

namespace accel {
namespace {

struct SoftmaxLayout {
  std::int64_t outer = 1, reduced = 1, inner = 1;
};

SoftmaxLayout layout(const Tensor& a, std::int64_t dim, const char* op) {
  const std::size_t axis = normalize_dim(dim, a.dim(), op);
  SoftmaxLayout l;
  for (std::size_t i = 0; i < axis; ++i) l.outer *= a.shape()[i];
  l.reduced = a.shape()[axis];
  for (std::size_t i = axis + 1; i < a.dim(); ++i) l.inner *= a.shape()[i];
  return l;
}

}  // namespace

Tensor log_softmax(const Tensor& a, std::int64_t dim) {
  detail::check_float32("log_softmax", a, "input");
  const SoftmaxLayout l = layout(a, dim, "log_softmax");
  const Tensor in = a.contiguous();
  Tensor out = empty(a.shape(), DType::Float32, a.device());
  backend_for(a.device()).log_softmax(in.data_ptr<float>(), l.outer, l.reduced, l.inner, out.data_ptr<float>());
  autograd::record("LogSoftmaxBackward", out, {a}, [out = out.detach(), l](const Tensor& g, const std::vector<bool>&) {
    const Tensor grad = g.contiguous();
    Tensor dx = empty(out.shape(), DType::Float32, out.device());
    backend_for(out.device())
        .log_softmax_backward(grad.data_ptr<float>(), out.data_ptr<float>(), l.outer, l.reduced, l.inner,
                              dx.data_ptr<float>());
    return std::vector<Tensor>{dx};
  });
  return out;
}

Tensor softmax(const Tensor& a, std::int64_t dim) { return exp(log_softmax(a, dim)); }

Tensor cross_entropy(const Tensor& logits, const Tensor& targets) {
  detail::check_float32("cross_entropy", logits, "logits");
  detail::check_same_device("cross_entropy", logits, targets);
  if (targets.dtype() != DType::Int64) {
    throw DTypeError("cross_entropy: targets must be int64 class indices, got " +
                     std::string(dtype_name(targets.dtype())) + "; convert with .to(DType::Int64)");
  }
  if (logits.dim() != 2) {
    throw ShapeError("cross_entropy: logits must be [N, C], got " + logits.shape().to_string());
  }
  if (targets.dim() != 1 || targets.shape()[0] != logits.shape()[0]) {
    throw ShapeError("cross_entropy: targets must be [" + std::to_string(logits.shape()[0]) + "] to match logits " +
                     logits.shape().to_string() + ", got " + targets.shape().to_string());
  }
  const std::int64_t rows = logits.shape()[0], cols = logits.shape()[1];
  const Tensor x = logits.contiguous();
  const Tensor y = targets.contiguous();
  Tensor probs = empty(logits.shape(), DType::Float32, logits.device());
  Tensor loss = empty(Shape{}, DType::Float32, logits.device());
  backend_for(logits.device())
      .softmax_cross_entropy(x.data_ptr<float>(), y.data_ptr<std::int64_t>(), rows, cols, probs.data_ptr<float>(),
                             loss.data_ptr<float>());
  autograd::record("CrossEntropyBackward", loss, {logits},
                   [probs, y, rows, cols](const Tensor& g, const std::vector<bool>&) {
                     const Tensor grad = g.contiguous();
                     Tensor dx = empty(probs.shape(), DType::Float32, probs.device());
                     backend_for(probs.device())
                         .softmax_cross_entropy_backward(probs.data_ptr<float>(), y.data_ptr<std::int64_t>(), rows,
                                                         cols, grad.data_ptr<float>(), dx.data_ptr<float>());
                     return std::vector<Tensor>{dx};
                   });
  return loss;
}

Tensor mse_loss(const Tensor& input, const Tensor& target) {
  if (input.shape() != target.shape()) {
    throw ShapeError("mse_loss: input " + input.shape().to_string() + " and target " + target.shape().to_string() +
                     " must have the same shape");
  }
  const Tensor diff = sub(input, target);
  return mean(mul(diff, diff));
}

}  // namespace accel
