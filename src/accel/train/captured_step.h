// CapturedStep: one training step (forward, loss, backward, optimizer step) recorded once and
// replayed for every later batch of the same shape (backends/kernel_recording.h).
//
//   CapturedStep step([&](const Tensor& x, const Tensor& y) {
//     optimizer.zero_grad();
//     Tensor loss = criterion(model(x), y);
//     loss.backward();
//     optimizer.step();
//     return loss;
//   });
//   for (batch : loader) add_(epoch_loss, step.run(batch.inputs, batch.labels));
//
// The first batch runs eagerly (it creates the optimizer's state, as CUDA Graphs want a warm-up),
// the second is captured while it runs, later ones copy the batch into the step's own input
// buffers (unless it is already there: input_buffers()) and replay. A batch of another shape (an epoch's short last
// batch) runs eagerly. If the step cannot be replayed (it reads a value on the host: GradScaler's inf check, an
// unpacked model's Adam count; dropout's host mask), every step runs eagerly and
// fallback_reason() says why.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "accel/backends/kernel_recording.h"
#include "accel/tensor/tensor.h"

namespace accel::train {

class CapturedStep {
 public:
  // Runs one whole step on (inputs, labels) and returns the loss, a device scalar.
  using StepFn = std::function<Tensor(const Tensor& inputs, const Tensor& labels)>;
  // enabled = false: always eager (the reference for the captured step).
  explicit CapturedStep(StepFn step, bool enabled = true);
  ~CapturedStep();

  // One step on this batch; the loss returned is overwritten by the next run().
  Tensor run(const Tensor& inputs, const Tensor& labels);

  bool replaying() const { return state_ == State::Replay; }
  // The step's own input buffers while it captures or replays (undefined tensors otherwise). A
  // caller that writes the next batch straight into them (DataLoader::batch_into) and passes
  // them to run() saves the copy: at batch 512 of the seed's model, 1.6 MB a step.
  std::pair<Tensor, Tensor> input_buffers() const;
  // Warms up and captures again from the next run(): after anything the recording holds by
  // value changes (a new learning rate, a loaded optimizer state, a re-packed model). Replay
  // repeats the step as it was captured, hyperparameters and buffers included.
  void recapture();
  // Kernel calls replayed per step (0 until captured).
  std::size_t kernels() const { return recording_ ? recording_->size() : 0; }
  // How the replays run (KernelRecording::replay_mode): "" call by call, "as one CUDA Graph", ...
  std::string replay_mode() const { return recording_ ? recording_->replay_mode() : ""; }
  // Why steps run eagerly ("disabled", or what could not be replayed); empty otherwise.
  const std::string& fallback_reason() const { return reason_; }

 private:
  enum class State { WarmUp, Capture, Replay, Eager };
  bool same_layout(const Tensor& inputs, const Tensor& labels) const;

  StepFn step_;
  State state_;
  std::string reason_;
  Tensor inputs_, labels_;  // the step's own input buffers
  std::unique_ptr<KernelRecording> recording_;
  Tensor loss_;  // from the recording's pool: released before the recording (declared after it)
};

}  // namespace accel::train
