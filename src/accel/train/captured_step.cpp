#include "accel/train/captured_step.h"

#include "accel/autograd/grad_mode.h"
#include "accel/ops/ops.h"

namespace accel::train {

CapturedStep::CapturedStep(StepFn step, bool enabled)
    : step_(std::move(step)), state_(enabled ? State::WarmUp : State::Eager), reason_(enabled ? "" : "disabled") {}

CapturedStep::~CapturedStep() { loss_ = Tensor(); }

void CapturedStep::recapture() {
  if (state_ != State::Replay) return;
  loss_ = Tensor();
  recording_.reset();
  // Warm up again first: state created lazily by the next step (Adam's device count after a
  // load) must exist before the capture, or its initialisation would be replayed every step.
  state_ = State::WarmUp;
}

std::pair<Tensor, Tensor> CapturedStep::input_buffers() const {
  if (state_ != State::Capture && state_ != State::Replay) return {};
  return {inputs_, labels_};
}

bool CapturedStep::same_layout(const Tensor& inputs, const Tensor& labels) const {
  return inputs.shape() == inputs_.shape() && inputs.dtype() == inputs_.dtype() &&
         inputs.device() == inputs_.device() && labels.shape() == labels_.shape() &&
         labels.dtype() == labels_.dtype() && labels.device() == labels_.device();
}

Tensor CapturedStep::run(const Tensor& inputs, const Tensor& labels) {
  switch (state_) {
    case State::Eager:
      return step_(inputs, labels);
    case State::WarmUp: {
      inputs_ = inputs.detach().clone();
      labels_ = labels.detach().clone();
      state_ = State::Capture;
      return step_(inputs_, labels_);
    }
    default:
      break;
  }
  if (!same_layout(inputs, labels)) return step_(inputs, labels);
  {
    autograd::NoGradGuard no_grad;
    if (inputs.impl_ptr() != inputs_.impl_ptr()) copy_(inputs_, inputs);  // not the buffer itself
    if (labels.impl_ptr() != labels_.impl_ptr()) copy_(labels_, labels);
  }
  if (state_ == State::Replay) {
    recording_->replay();
    return loss_;
  }
  // Capture: this step runs for real while its kernel calls are recorded.
  recording_ = std::make_unique<KernelRecording>(inputs_.device());
  Tensor loss;
  {
    CaptureScope capture(*recording_);
    loss = step_(inputs_, labels_);
  }
  if (const auto& invalid = recording_->invalid_reason()) {
    reason_ = *invalid;
    state_ = State::Eager;
    const Tensor result = loss.detach().clone();  // out of the pool, which goes with the recording
    loss = Tensor();
    recording_.reset();
    return result;
  }
  loss_ = loss.detach();
  state_ = State::Replay;
  return loss_;
}

}  // namespace accel::train
