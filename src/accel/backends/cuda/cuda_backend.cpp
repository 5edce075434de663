// The CUDA backend's host side: the stream, events, copies, the kernel-error record, and the
// calls into this folder's kernels and the GEMM engine.
#include "accel/backends/cuda/cuda_backend.h"

#include <algorithm>
#include <string>

#include "accel/backends/cuda/cuda_check.h"
#include "accel/backends/cuda/cuda_gemm.h"
#include "accel/backends/kernel_errors.h"
#include "accel/memory/device_allocators.h"

namespace accel::cuda_backend {

namespace {

class CudaGraph final : public ReplayGraph {
 public:
  CudaGraph(int device, cudaGraphExec_t exec, cudaStream_t stream) : device_(device), exec_(exec), stream_(stream) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  void launch() override {
    DeviceGuard guard(device_);
    ACCEL_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
  }

 private:
  int device_;
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};

std::string cuda_error_text(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")";
}

}  // namespace

CudaBackend::CudaBackend(int index) : index_(index) {
  DeviceGuard guard(index_);
  ACCEL_CUDA_CHECK(cudaStreamCreate(&stream_));
  ACCEL_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
  // Kernels claim the record with a device-memory atomic (atomics on mapped host memory are
  // not guaranteed over PCIe); synchronize() reads it back with the stream's last copy.
  void* record = nullptr;
  ACCEL_CUDA_CHECK(cudaMalloc(&record, sizeof(KernelErrorRecord)));
  error_device_ = static_cast<KernelErrorRecord*>(record);
  ACCEL_CUDA_CHECK(cudaMemset(error_device_, 0, sizeof(KernelErrorRecord)));
  void* host_record = nullptr;
  ACCEL_CUDA_CHECK(cudaMallocHost(&host_record, sizeof(KernelErrorRecord)));
  error_host_ = static_cast<KernelErrorRecord*>(host_record);
  void* counter = nullptr;
  ACCEL_CUDA_CHECK(cudaMalloc(&counter, sizeof(unsigned)));
  adam_blocks_done_ = static_cast<unsigned*>(counter);
  ACCEL_CUDA_CHECK(cudaMemset(adam_blocks_done_, 0, sizeof(unsigned)));
  void* scratch = nullptr;
  ACCEL_CUDA_CHECK(cudaMalloc(&scratch, sizeof(ReduceScratch)));
  reduce_scratch_ = static_cast<ReduceScratch*>(scratch);
  ACCEL_CUDA_CHECK(cudaMemset(reduce_scratch_, 0, sizeof(ReduceScratch)));
}

CudaBackend::~CudaBackend() {
  gemm_.reset();
  for (cudaEvent_t event : events_) cudaEventDestroy(event);
  if (reduce_scratch_) cudaFree(reduce_scratch_);
  if (adam_blocks_done_) cudaFree(adam_blocks_done_);
  if (error_host_) cudaFreeHost(error_host_);
  if (error_device_) cudaFree(error_device_);
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
  if (stream_) cudaStreamDestroy(stream_);
}

memory::Allocator& CudaBackend::allocator() { return memory::caching_allocator(device()); }

std::string CudaBackend::gemm_library() { return cublaslt_description(); }

cudaStream_t CudaBackend::stream_of(const Stream& stream) const {
  return stream.id == 0 ? stream_ : reinterpret_cast<cudaStream_t>(stream.id);
}

std::unique_ptr<ReplayGraph> CudaBackend::capture_graph(const std::function<void()>& calls, std::string* why_not) {
  DeviceGuard guard(index_);
  {
    // The first GEMM loads cuBLASLt and allocates its workspace, which a capture may not do.
    std::lock_guard lock(mutex_);
    if (!gemm_) gemm_ = std::make_unique<GemmEngine>(index_);
  }
  // Thread-local: another thread's unsafe calls (cudaMalloc) do not break the capture. Work
  // another thread queues on this stream would join it: fit prefetches no batches on CUDA.
  ACCEL_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  std::string failure;
  try {
    calls();
  } catch (const Error& error) {  // a call that may not run in a capture (a synchronisation)
    failure = error.what();
  } catch (...) {  // anything else is not the capture's business: end it, then let it through
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(stream_, &partial);
    if (partial) cudaGraphDestroy(partial);
    cudaGetLastError();
    throw;
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  if (failure.empty() && ended != cudaSuccess) failure = "cudaStreamEndCapture: " + cuda_error_text(ended);
  cudaGraphExec_t exec = nullptr;
  if (failure.empty()) {
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    if (made != cudaSuccess) failure = "cudaGraphInstantiate: " + cuda_error_text(made);
  }
  if (graph) cudaGraphDestroy(graph);
  if (!failure.empty()) {
    cudaGetLastError();  // a failed capture's error is not this stream's next call's
    *why_not = "the CUDA Graph capture failed: " + failure;
    return nullptr;
  }
  return std::make_unique<CudaGraph>(index_, exec, stream_);
}

void CudaBackend::synchronize(const Stream& stream) {
  DeviceGuard guard(index_);
  const cudaStream_t s = stream_of(stream);
  ACCEL_CUDA_CHECK(cudaMemcpyAsync(error_host_, error_device_, sizeof(KernelErrorRecord), cudaMemcpyDeviceToHost, s));
  ACCEL_CUDA_CHECK(cudaStreamSynchronize(s));
  if (error_host_->code == 0) return;
  const KernelErrorRecord record = *error_host_;
  ACCEL_CUDA_CHECK(cudaMemsetAsync(error_device_, 0, sizeof(KernelErrorRecord), s));
  ACCEL_CUDA_CHECK(cudaStreamSynchronize(s));
  if (record.code == kKernelErrorRowIndex) {
    throw ValueError(row_index_out_of_range_message(record.value, record.row, record.limit));
  }
  throw ValueError(target_out_of_range_message(record.value, record.row, record.limit));
}

Stream CudaBackend::copy_stream() { return Stream{device(), reinterpret_cast<std::uint64_t>(copy_stream_)}; }

Event CudaBackend::record_event(const Stream& stream) {
  DeviceGuard guard(index_);
  cudaEvent_t event = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (!free_events_.empty()) {
      event = free_events_.back();
      free_events_.pop_back();
    }
  }
  if (!event) {
    ACCEL_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    std::lock_guard lock(mutex_);
    events_.push_back(event);
  }
  // A wait queued on the event's earlier recording keeps that recording: reuse is safe.
  if (const cudaError_t status = cudaEventRecord(event, stream_of(stream)); status != cudaSuccess) {
    release_event(Event{device(), reinterpret_cast<std::uint64_t>(event)});
    ACCEL_CUDA_CHECK(status);
  }
  return Event{device(), reinterpret_cast<std::uint64_t>(event)};
}

void CudaBackend::wait_event(const Stream& stream, const Event& event) {
  DeviceGuard guard(index_);
  ACCEL_CUDA_CHECK(cudaStreamWaitEvent(stream_of(stream), reinterpret_cast<cudaEvent_t>(event.id), 0));
}

bool CudaBackend::event_done(const Event& event) {
  DeviceGuard guard(index_);
  const cudaError_t status = cudaEventQuery(reinterpret_cast<cudaEvent_t>(event.id));
  if (status == cudaErrorNotReady) {
    cudaGetLastError();  // not an error: the event has not passed yet
    return false;
  }
  ACCEL_CUDA_CHECK(status);
  return true;
}

void CudaBackend::synchronize_event(const Event& event) {
  DeviceGuard guard(index_);
  ACCEL_CUDA_CHECK(cudaEventSynchronize(reinterpret_cast<cudaEvent_t>(event.id)));
}

void CudaBackend::release_event(const Event& event) noexcept {
  std::lock_guard lock(mutex_);
  free_events_.push_back(reinterpret_cast<cudaEvent_t>(event.id));
}

void* CudaBackend::allocate_pinned(std::size_t nbytes) {
  DeviceGuard guard(index_);
  void* ptr = nullptr;
  if (const cudaError_t status = cudaHostAlloc(&ptr, std::max<std::size_t>(nbytes, 1), cudaHostAllocPortable);
      status != cudaSuccess) {
    cudaGetLastError();
    throw OutOfMemoryError("pinned host allocation of " + std::to_string(nbytes) +
                           " bytes failed: " + cuda_error_text(status) +
                           "; the machine's page-locked memory is used up (ulimit -l, or a smaller batch size)");
  }
  return ptr;
}

void CudaBackend::free_pinned(void* ptr, std::size_t) noexcept { cudaFreeHost(ptr); }

void CudaBackend::copy_from_host(void* dst, const void* host_src, std::size_t nbytes, const Stream& stream) {
  if (nbytes == 0) return;
  DeviceGuard guard(index_);
  // From pageable memory the call returns once the source is staged: the caller may free it.
  ACCEL_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, nbytes, cudaMemcpyHostToDevice, stream_of(stream)));
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, std::size_t nbytes, const Stream& stream) {
  if (nbytes == 0) return;
  DeviceGuard guard(index_);
  ACCEL_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, nbytes, cudaMemcpyDeviceToHost, stream_of(stream)));
}

void CudaBackend::copy(const TensorDesc& src, const TensorDesc& dst, const Stream& s) {
  DeviceGuard guard(index_);
  launch_copy(src, dst, stream_of(s));
}

void CudaBackend::fill(const TensorDesc& dst, double value, const Stream& s) {
  DeviceGuard guard(index_);
  launch_fill(dst, value, stream_of(s));
}

void CudaBackend::gather_rows(const TensorDesc& src, const TensorDesc& index, const TensorDesc& dst, const Stream& s) {
  DeviceGuard guard(index_);
  launch_gather_rows(src, index, dst, error_device_, stream_of(s));
}

void CudaBackend::dropout_mask(const TensorDesc& dst, double p, std::uint64_t seed, std::uint64_t* offset,
                               const Stream& s) {
  DeviceGuard guard(index_);
  launch_dropout_mask(dst, p, seed, offset, stream_of(s));
}

void CudaBackend::binary(BinaryOp op, const TensorDesc& a, const TensorDesc& b, const TensorDesc& out,
                         const Stream& s) {
  DeviceGuard guard(index_);
  launch_binary(op, a, b, out, stream_of(s));
}

void CudaBackend::binary_scalar(BinaryOp op, const TensorDesc& a, double scalar, const TensorDesc& out,
                                const Stream& s) {
  DeviceGuard guard(index_);
  launch_binary_scalar(op, a, scalar, out, stream_of(s));
}

void CudaBackend::unary(UnaryOp op, const TensorDesc& in, const TensorDesc& out, const Stream& s) {
  DeviceGuard guard(index_);
  launch_unary(op, in, out, stream_of(s));
}

void CudaBackend::relu_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst, const Stream& s) {
  DeviceGuard guard(index_);
  launch_relu_backward(grad, out, dst, stream_of(s));
}

void CudaBackend::eq(const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, const Stream& s) {
  DeviceGuard guard(index_);
  launch_eq(a, b, out, stream_of(s));
}

void CudaBackend::gemm(const TensorDesc& a, const TensorDesc& b, const TensorDesc& c, const GemmEpilogue& epilogue,
                       const Stream& s) {
  DeviceGuard guard(index_);
  {
    // cuBLASLt is loaded on the first GEMM: every other kernel works without it.
    std::lock_guard lock(mutex_);
    if (!gemm_) gemm_ = std::make_unique<GemmEngine>(index_);
  }
  gemm_->run(a, b, c, epilogue, stream_of(s));
}

void CudaBackend::sum(const TensorDesc& in, const TensorDesc& out, const Stream& s) {
  DeviceGuard guard(index_);
  launch_sum(in, out, stream_of(s));
}

void CudaBackend::argmax(const TensorDesc& in, const TensorDesc& out, const Stream& s) {
  DeviceGuard guard(index_);
  launch_argmax(in, out, stream_of(s));
}

void CudaBackend::log_softmax(const TensorDesc& in, const TensorDesc& out, const Stream& s) {
  DeviceGuard guard(index_);
  launch_log_softmax(in, out, stream_of(s));
}

void CudaBackend::log_softmax_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst,
                                       const Stream& s) {
  DeviceGuard guard(index_);
  launch_log_softmax_backward(grad, out, dst, stream_of(s));
}

void CudaBackend::softmax_cross_entropy(const TensorDesc& logits, const TensorDesc& targets, const TensorDesc& probs,
                                        const TensorDesc& loss, const Stream& s) {
  DeviceGuard guard(index_);
  launch_softmax_cross_entropy(logits, targets, probs, loss, reduce_scratch_, error_device_, stream_of(s));
}

void CudaBackend::softmax_cross_entropy_backward(const TensorDesc& probs, const TensorDesc& targets,
                                                 const TensorDesc& grad_loss, const TensorDesc& dlogits,
                                                 const Stream& s) {
  DeviceGuard guard(index_);
  launch_softmax_cross_entropy_backward(probs, targets, grad_loss, dlogits, stream_of(s));
}

void CudaBackend::adam_step(std::span<const ParamBuffers> params, const AdamHyper& hyper, const Stream& s) {
  DeviceGuard guard(index_);
  launch_adam(params, hyper, adam_blocks_done_, stream_of(s));
}

void CudaBackend::sgd_step(std::span<const ParamBuffers> params, const SgdHyper& hyper, const Stream& s) {
  DeviceGuard guard(index_);
  launch_sgd(params, hyper, stream_of(s));
}

void CudaBackend::unscale_and_check_finite(std::span<const GradSpan> grads, const float* scale, float* found_inf,
                                           const Stream& s) {
  DeviceGuard guard(index_);
  launch_unscale(grads, scale, found_inf, stream_of(s));
}

void CudaBackend::update_scale(float* scale, std::int32_t* growth_tracker, const float* found_inf, double growth,
                               double backoff, std::int32_t interval, const Stream& s) {
  DeviceGuard guard(index_);
  launch_update_scale(scale, growth_tracker, found_inf, growth, backoff, interval, stream_of(s));
}

}  // namespace accel::cuda_backend
