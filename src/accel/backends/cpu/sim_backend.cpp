// The sim backend's calls: translate every device pointer to its host address, then run the
// CPU kernel (memory/simulated_memory.h says why sim pointers are not host addresses).
#include "accel/backends/cpu/sim_backend.h"

#include <vector>

#include "accel/memory/simulated_memory.h"

namespace accel::cpu {
namespace {

using memory::sim_host_address;

TensorDesc host(const TensorDesc& d) {
  TensorDesc h = d;
  h.data = sim_host_address(d.data);
  return h;
}

template <typename T>
T* host(T* p) {
  return static_cast<T*>(sim_host_address(p));
}

std::vector<ParamBuffers> host(std::span<const ParamBuffers> params) {
  std::vector<ParamBuffers> out(params.begin(), params.end());
  for (ParamBuffers& p : out) {
    p.param = host(p.param);
    p.grad = host(p.grad);
    p.exp_avg = host(p.exp_avg);
    p.exp_avg_sq = host(p.exp_avg_sq);
  }
  return out;
}

}  // namespace

void SimBackend::copy_from_host(void* dst, const void* host_src, std::size_t nbytes, const Stream& s) {
  CpuBackend::copy_from_host(host(dst), host_src, nbytes, s);
}
void SimBackend::copy_to_host(void* host_dst, const void* src, std::size_t nbytes, const Stream& s) {
  CpuBackend::copy_to_host(host_dst, host(src), nbytes, s);
}
void SimBackend::copy(const TensorDesc& src, const TensorDesc& dst, const Stream& s) {
  CpuBackend::copy(host(src), host(dst), s);
}
void SimBackend::fill(const TensorDesc& dst, double value, const Stream& s) { CpuBackend::fill(host(dst), value, s); }
void SimBackend::gather_rows(const TensorDesc& src, const TensorDesc& index, const TensorDesc& dst, const Stream& s) {
  CpuBackend::gather_rows(host(src), host(index), host(dst), s);
}
void SimBackend::dropout_mask(const TensorDesc& dst, double p, std::uint64_t seed, std::uint64_t* offset,
                              const Stream& s) {
  CpuBackend::dropout_mask(host(dst), p, seed, host(offset), s);
}
void SimBackend::binary(BinaryOp op, const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, const Stream& s) {
  CpuBackend::binary(op, host(a), host(b), host(out), s);
}
void SimBackend::binary_scalar(BinaryOp op, const TensorDesc& a, double scalar, const TensorDesc& out,
                               const Stream& s) {
  CpuBackend::binary_scalar(op, host(a), scalar, host(out), s);
}
void SimBackend::unary(UnaryOp op, const TensorDesc& in, const TensorDesc& out, const Stream& s) {
  CpuBackend::unary(op, host(in), host(out), s);
}
void SimBackend::relu_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst, const Stream& s) {
  CpuBackend::relu_backward(host(grad), host(out), host(dst), s);
}
void SimBackend::eq(const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, const Stream& s) {
  CpuBackend::eq(host(a), host(b), host(out), s);
}
void SimBackend::gemm(const TensorDesc& a, const TensorDesc& b, const TensorDesc& c, const GemmEpilogue& epilogue,
                      const Stream& s) {
  GemmEpilogue translated = epilogue;
  TensorDesc bias, row_sums, relu_mask, bias_gradient;
  const auto translate = [](const TensorDesc* device, TensorDesc& on_host, const TensorDesc*& field) {
    if (!device) return;
    on_host = host(*device);
    field = &on_host;
  };
  translate(epilogue.bias, bias, translated.bias);
  translate(epilogue.a_row_sums, row_sums, translated.a_row_sums);
  translate(epilogue.relu_mask, relu_mask, translated.relu_mask);
  translate(epilogue.bias_gradient, bias_gradient, translated.bias_gradient);
  CpuBackend::gemm(host(a), host(b), host(c), translated, s);
}
void SimBackend::sum(const TensorDesc& in, const TensorDesc& out, const Stream& s) {
  CpuBackend::sum(host(in), host(out), s);
}
void SimBackend::argmax(const TensorDesc& in, const TensorDesc& out, const Stream& s) {
  CpuBackend::argmax(host(in), host(out), s);
}
void SimBackend::log_softmax(const TensorDesc& in, const TensorDesc& out, const Stream& s) {
  CpuBackend::log_softmax(host(in), host(out), s);
}
void SimBackend::log_softmax_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst,
                                      const Stream& s) {
  CpuBackend::log_softmax_backward(host(grad), host(out), host(dst), s);
}
void SimBackend::softmax_cross_entropy(const TensorDesc& logits, const TensorDesc& targets, const TensorDesc& probs,
                                       const TensorDesc& loss, const Stream& s) {
  CpuBackend::softmax_cross_entropy(host(logits), host(targets), host(probs), host(loss), s);
}
void SimBackend::softmax_cross_entropy_backward(const TensorDesc& probs, const TensorDesc& targets,
                                                const TensorDesc& grad_loss, const TensorDesc& dlogits,
                                                const Stream& s) {
  CpuBackend::softmax_cross_entropy_backward(host(probs), host(targets), host(grad_loss), host(dlogits), s);
}
void SimBackend::adam_step(std::span<const ParamBuffers> params, const AdamHyper& hyper, const Stream& s) {
  const std::vector<ParamBuffers> translated = host(params);
  AdamHyper h = hyper;
  h.device_step = host(h.device_step);
  h.found_inf = host(h.found_inf);
  CpuBackend::adam_step(translated, h, s);
}
void SimBackend::sgd_step(std::span<const ParamBuffers> params, const SgdHyper& hyper, const Stream& s) {
  const std::vector<ParamBuffers> translated = host(params);
  CpuBackend::sgd_step(translated, hyper, s);
}
void SimBackend::unscale_and_check_finite(std::span<const GradSpan> grads, const float* scale, float* found_inf,
                                          const Stream& s) {
  std::vector<GradSpan> translated(grads.begin(), grads.end());
  for (GradSpan& g : translated) g.data = host(g.data);
  CpuBackend::unscale_and_check_finite(translated, host(scale), host(found_inf), s);
}
void SimBackend::update_scale(float* scale, std::int32_t* growth_tracker, const float* found_inf, double growth,
                              double backoff, std::int32_t interval, const Stream& s) {
  CpuBackend::update_scale(host(scale), host(growth_tracker), host(found_inf), growth, backoff, interval, s);
}

}  // namespace accel::cpu
