// Softmax, log-softmax and the losses.
#include "accel/autograd/node.h"
#include "accel/backends/backend.h"
#include "accel/ops/autocast.h"
#include "accel/ops/checks.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

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

Tensor log_softmax(const Tensor& a_, std::int64_t dim) {
  const Tensor a = amp::autocast_input(a_, amp::CastPolicy::Float32);
  detail::check_floating("log_softmax", a, "input");
  const SoftmaxLayout l = layout(a, dim, "log_softmax");
  const std::vector<std::int64_t> sizes{l.outer, l.reduced, l.inner};
  const Tensor in = a.detach().contiguous();
  Tensor out = empty(a.shape(), a.dtype(), a.device());
  backend_for(a.device()).log_softmax(desc_as(in, sizes), desc_as(out, sizes), stream_of(out));
  autograd::record(
      "LogSoftmaxBackward", out, {a}, [out = out.detach(), sizes](const Tensor& g, const std::vector<bool>&) {
        const Tensor grad = detail::as_dtype_of(g, out).contiguous();
        Tensor dx = empty(out.shape(), out.dtype(), out.device());
        backend_for(out.device())
            .log_softmax_backward(desc_as(grad, sizes), desc_as(out, sizes), desc_as(dx, sizes), stream_of(dx));
        return std::vector<Tensor>{dx};
      });
  return out;
}

Tensor softmax(const Tensor& a, std::int64_t dim) { return exp(log_softmax(a, dim)); }

Tensor cross_entropy(const Tensor& logits_, const Tensor& targets) {
  const Tensor logits = amp::autocast_input(logits_, amp::CastPolicy::Float32);
  detail::check_floating("cross_entropy", logits, "logits");
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
  const Tensor x = logits.detach().contiguous();
  const Tensor y = targets.detach().contiguous();
  Tensor probs = empty(logits.shape(), logits.dtype(), logits.device());
  Tensor loss = empty(Shape{}, logits.dtype(), logits.device());
  backend_for(logits.device()).softmax_cross_entropy(desc(x), desc(y), desc(probs), desc(loss), stream_of(loss));
  autograd::record("CrossEntropyBackward", loss, {logits}, [probs, y](const Tensor& g, const std::vector<bool>&) {
    const Tensor grad = detail::as_dtype_of(g, probs).contiguous();
    Tensor dx = empty(probs.shape(), probs.dtype(), probs.device());
    backend_for(probs.device())
        .softmax_cross_entropy_backward(desc(probs), desc(y), desc(grad), desc(dx), stream_of(dx));
    return std::vector<Tensor>{dx};
  });
  return loss;
}

Tensor mse_loss(const Tensor& input_, const Tensor& target_) {
  const Tensor input = amp::autocast_input(input_, amp::CastPolicy::Float32);
  const Tensor target = amp::autocast_input(target_, amp::CastPolicy::Float32);
  if (input.shape() != target.shape()) {
    throw ShapeError("mse_loss: input " + input.shape().to_string() + " and target " + target.shape().to_string() +
                     " must have the same shape");
  }
  const Tensor diff = sub(input, target);
  return mean(mul(diff, diff));
}

}  // namespace accel
