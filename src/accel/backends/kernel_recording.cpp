#include "accel/backends/kernel_recording.h"

#include <map>
#include <mutex>
#include <vector>

#include "accel/core/error.h"

namespace accel {

// Memory for the tensors a capture allocates: blocks from the device's allocator, reused by
// size within the capture, and held until the recording is destroyed. A tensor from the pool
// may outlive the recording (a gradient an invalid capture created, say): the pool then lives
// on until the last such block comes back, and frees itself.
class PrivatePool final : public memory::Allocator {
 public:
  explicit PrivatePool(memory::Allocator& upstream) : upstream_(upstream) {}
  ~PrivatePool() override {
    for (auto& [bytes, blocks] : free_) {
      for (void* p : blocks) upstream_.deallocate(p, bytes);
    }
  }
  void* allocate(std::size_t nbytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++live_;
    auto& cached = free_[nbytes];
    if (!cached.empty()) {
      void* p = cached.back();
      cached.pop_back();
      return p;
    }
    ++stats_.allocations;
    stats_.allocated_bytes += static_cast<std::int64_t>(nbytes);
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
    return upstream_.allocate(nbytes);
  }
  void deallocate(void* ptr, std::size_t nbytes) noexcept override {
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --live_;
      free_[nbytes].push_back(ptr);  // kept: a replay writes here again
      last = orphaned_ && live_ == 0;
    }
    if (last) delete this;
  }
  // The recording is gone: free now if nothing is out, else when the last block returns.
  void orphan() {
    bool now = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      orphaned_ = true;
      now = live_ == 0;
    }
    if (now) delete this;
  }
  Device device() const override { return upstream_.device(); }
  memory::AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  void reset_peak_stats() override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

 private:
  memory::Allocator& upstream_;
  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;
  std::int64_t live_ = 0;
  bool orphaned_ = false;
  memory::AllocatorStats stats_;
};

// Runs each call on the real backend and keeps it, with its arguments by value. A call that
// cannot be replayed still runs (the capture is a real step) and marks the capture invalid.
class RecordingBackend final : public Backend {
 public:
  RecordingBackend(Backend& real, KernelRecording& recording, PrivatePool& pool)
      : real_(real), recording_(recording), pool_(pool) {}

  Device device() const override { return real_.device(); }
  memory::Allocator& allocator() override { return pool_; }
  std::string gemm_library() override { return real_.gemm_library(); }
  bool fuses_relu_mask(DType dtype) const override { return real_.fuses_relu_mask(dtype); }

  void synchronize(const Stream& s) override {
    keep(__func__, [&real = real_, s] { real.synchronize(s); });
  }
  Stream copy_stream() override { return real_.copy_stream(); }
  Event record_event(const Stream& s) override { return real_.record_event(s); }
  void wait_event(const Stream& s, const Event& e) override {
    keep(__func__, [&real = real_, s, e] { real.wait_event(s, e); });
  }
  bool event_done(const Event& e) override {
    mark_uncapturable("a query of an event (a value read on the host)");
    return real_.event_done(e);
  }
  void synchronize_event(const Event& e) override {
    mark_uncapturable("a wait for an event (a synchronisation)");
    real_.synchronize_event(e);
  }
  void release_event(const Event& e) noexcept override { real_.release_event(e); }
  void* allocate_pinned(std::size_t nbytes) override { return real_.allocate_pinned(nbytes); }
  void free_pinned(void* ptr, std::size_t nbytes) noexcept override { real_.free_pinned(ptr, nbytes); }
  void copy_from_host(void* dst, const void* src, std::size_t n, const Stream& s) override {
    mark_uncapturable("a copy from host memory (the host buffer may not exist at replay)");
    real_.copy_from_host(dst, src, n, s);
  }
  void copy_to_host(void* dst, const void* src, std::size_t n, const Stream& s) override {
    mark_uncapturable("a copy to host memory (a value read on the host)");
    real_.copy_to_host(dst, src, n, s);
  }
  void copy(const TensorDesc& src, const TensorDesc& dst, const Stream& s) override {
    keep(__func__, [&real = real_, src, dst, s] { real.copy(src, dst, s); });
  }
  void fill(const TensorDesc& dst, double value, const Stream& s) override {
    keep(__func__, [&real = real_, dst, value, s] { real.fill(dst, value, s); });
  }
  void gather_rows(const TensorDesc& src, const TensorDesc& index, const TensorDesc& dst, const Stream& s) override {
    keep(__func__, [&real = real_, src, index, dst, s] { real.gather_rows(src, index, dst, s); });
  }
  void dropout_mask(const TensorDesc& dst, double p, std::uint64_t seed, std::uint64_t* offset,
                    const Stream& s) override {
    keep(__func__, [&real = real_, dst, p, seed, offset, s] { real.dropout_mask(dst, p, seed, offset, s); });
  }
  void binary(BinaryOp op, const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, const Stream& s) override {
    keep(__func__, [&real = real_, op, a, b, out, s] { real.binary(op, a, b, out, s); });
  }
  void binary_scalar(BinaryOp op, const TensorDesc& a, double scalar, const TensorDesc& out, const Stream& s) override {
    keep(__func__, [&real = real_, op, a, scalar, out, s] { real.binary_scalar(op, a, scalar, out, s); });
  }
  void unary(UnaryOp op, const TensorDesc& in, const TensorDesc& out, const Stream& s) override {
    keep(__func__, [&real = real_, op, in, out, s] { real.unary(op, in, out, s); });
  }
  void relu_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst, const Stream& s) override {
    keep(__func__, [&real = real_, grad, out, dst, s] { real.relu_backward(grad, out, dst, s); });
  }
  void eq(const TensorDesc& a, const TensorDesc& b, const TensorDesc& out, const Stream& s) override {
    keep(__func__, [&real = real_, a, b, out, s] { real.eq(a, b, out, s); });
  }
  void gemm(const TensorDesc& a, const TensorDesc& b, const TensorDesc& c, const GemmEpilogue& epilogue,
            const Stream& s) override {
    const auto copied = [](const TensorDesc* d) { return d ? std::optional<TensorDesc>(*d) : std::nullopt; };
    const auto pointer = [](const std::optional<TensorDesc>& d) { return d ? &*d : nullptr; };
    keep(__func__, [&real = real_, a, b, c, bias = copied(epilogue.bias), beta = epilogue.beta, relu = epilogue.relu,
                    sums = copied(epilogue.a_row_sums), mask = copied(epilogue.relu_mask),
                    bias_gradient = copied(epilogue.bias_gradient), pointer, s] {
      real.gemm(a, b, c, GemmEpilogue{pointer(bias), beta, relu, pointer(sums), pointer(mask), pointer(bias_gradient)},
                s);
    });
  }
  void sum(const TensorDesc& in, const TensorDesc& out, const Stream& s) override {
    keep(__func__, [&real = real_, in, out, s] { real.sum(in, out, s); });
  }
  void argmax(const TensorDesc& in, const TensorDesc& out, const Stream& s) override {
    keep(__func__, [&real = real_, in, out, s] { real.argmax(in, out, s); });
  }
  void log_softmax(const TensorDesc& in, const TensorDesc& out, const Stream& s) override {
    keep(__func__, [&real = real_, in, out, s] { real.log_softmax(in, out, s); });
  }
  void log_softmax_backward(const TensorDesc& grad, const TensorDesc& out, const TensorDesc& dst,
                            const Stream& s) override {
    keep(__func__, [&real = real_, grad, out, dst, s] { real.log_softmax_backward(grad, out, dst, s); });
  }
  void softmax_cross_entropy(const TensorDesc& logits, const TensorDesc& targets, const TensorDesc& probs,
                             const TensorDesc& loss, const Stream& s) override {
    keep(__func__, [&real = real_, logits, targets, probs, loss, s] {
      real.softmax_cross_entropy(logits, targets, probs, loss, s);
    });
  }
  void softmax_cross_entropy_backward(const TensorDesc& probs, const TensorDesc& targets, const TensorDesc& grad_loss,
                                      const TensorDesc& dlogits, const Stream& s) override {
    keep(__func__, [&real = real_, probs, targets, grad_loss, dlogits, s] {
      real.softmax_cross_entropy_backward(probs, targets, grad_loss, dlogits, s);
    });
  }
  void adam_step(std::span<const ParamBuffers> params, const AdamHyper& hyper, const Stream& s) override {
    if (!hyper.device_step) mark_uncapturable("an Adam step whose count is on the host (pack the model's parameters)");
    keep(__func__, [&real = real_, params = std::vector<ParamBuffers>(params.begin(), params.end()), hyper, s] {
      real.adam_step(params, hyper, s);
    });
  }
  void sgd_step(std::span<const ParamBuffers> params, const SgdHyper& hyper, const Stream& s) override {
    if (hyper.first_step) mark_uncapturable("SGD's first momentum step (its host flag changes after it)");
    keep(__func__, [&real = real_, params = std::vector<ParamBuffers>(params.begin(), params.end()), hyper, s] {
      real.sgd_step(params, hyper, s);
    });
  }
  void unscale_and_check_finite(std::span<const GradSpan> grads, const float* scale, float* found_inf,
                                const Stream& s) override {
    keep(__func__, [&real = real_, grads = std::vector<GradSpan>(grads.begin(), grads.end()), scale, found_inf, s] {
      real.unscale_and_check_finite(grads, scale, found_inf, s);
    });
  }
  void update_scale(float* scale, std::int32_t* tracker, const float* found_inf, double growth, double backoff,
                    std::int32_t interval, const Stream& s) override {
    keep(__func__, [&real = real_, scale, tracker, found_inf, growth, backoff, interval, s] {
      real.update_scale(scale, tracker, found_inf, growth, backoff, interval, s);
    });
  }

 private:
  // Runs the call now (the capture is a real step) and keeps it for replay, with its name.
  template <typename F>
  void keep(const char* name, F call) {
    call();
    recording_.calls_.emplace_back(std::move(call));
    recording_.names_.push_back(name);
  }
  Backend& real_;
  KernelRecording& recording_;
  PrivatePool& pool_;
};

namespace {
thread_local KernelRecording* active = nullptr;
}

KernelRecording::KernelRecording(Device device) : device_(device) {
  if (is_capturing()) throw ValueError("capture: captures do not nest (one recording at a time per thread)");
  pool_ = new PrivatePool(backend_for(device).allocator());
  recorder_ = std::make_unique<RecordingBackend>(backend_for(device), *this, *pool_);
}

KernelRecording::~KernelRecording() {
  recorder_.reset();
  retained_.clear();  // may hand blocks back to the pool
  pool_->orphan();
}

void KernelRecording::replay() {
  if (invalid_) throw ValueError("replay: the capture cannot be replayed: " + *invalid_);
  if (!graph_tried_) {
    graph_tried_ = true;
    std::string why_not;
    graph_ = backend_for(device_).capture_graph(
        [this] {
          for (const auto& call : calls_) call();
        },
        &why_not);
    replay_mode_ = graph_ ? "as one CUDA Graph" : why_not.empty() ? "" : "call by call: " + why_not;
  }
  if (graph_) {
    graph_->launch();
    return;
  }
  for (const auto& call : calls_) call();
}

CaptureScope::CaptureScope(KernelRecording& recording) : previous_(active) { active = &recording; }
CaptureScope::~CaptureScope() { active = previous_; }

bool is_capturing() { return active != nullptr; }

void retain_for_replay(std::shared_ptr<const void> owner) {
  if (active && owner) active->retained_.push_back(std::move(owner));
}

void mark_uncapturable(const std::string& reason) {
  if (active && !active->invalid_) active->invalid_ = reason;
}

bool from_capture_pool(const memory::Allocator& allocator) {
  return active && &allocator == static_cast<const memory::Allocator*>(active->pool_);
}

Backend* capture_backend_for(Device device) {
  return active && active->device_ == device ? active->recorder_.get() : nullptr;
}

}  // namespace accel
