// Capturing kernels for replay: while a CaptureScope is active on a thread, backend_for(device)
// returns a recording backend that runs each kernel call and keeps it (its TensorDescs by
// value, so the same buffers); KernelRecording::replay() runs the kept calls again, in order,
// without the ops layer (no validation, no shape inference, no autograd tape, no allocation).
// Tensors allocated during capture come from the recording's private pool, which keeps their
// memory for the recording's lifetime: replay writes where the capture wrote, and nothing
// outside the recording is ever given that memory (a block freed during the capture may serve
// a later tensor of the same capture: the replay repeats that order, as CUDA Graphs' pools do). On CUDA the same
// recording is what a CUDA Graph captures.
//
// What cannot be replayed marks the capture invalid (mark_uncapturable): a value read on the
// host (item(), to_vector()), a mask drawn on the host (dropout). The caller then keeps running
// eagerly and reports why.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "accel/backends/backend.h"

namespace accel {

class PrivatePool;

class KernelRecording {
 public:
  explicit KernelRecording(Device device);
  ~KernelRecording();
  KernelRecording(const KernelRecording&) = delete;
  KernelRecording& operator=(const KernelRecording&) = delete;

  Device device() const { return device_; }
  std::size_t size() const { return calls_.size(); }
  // The backend method of each recorded call, in order ("gemm", "copy", "adam_step", ...).
  const std::vector<const char*>& call_names() const { return names_; }
  // Why the capture cannot be replayed (the first reason), or nothing.
  const std::optional<std::string>& invalid_reason() const { return invalid_; }
  // Runs every recorded call again. Throws ValueError for an invalid recording. The first
  // replay asks the backend to capture the calls as one graph (a CUDA Graph); later replays
  // launch it, or run the calls one by one where the backend has none.
  void replay();
  // How replays run: "" (call by call, as on the CPU), "as one CUDA Graph", or "call by call:
  // <why the graph capture failed>"; empty before the first replay.
  const std::string& replay_mode() const { return replay_mode_; }

 private:
  friend class RecordingBackend;
  friend class CaptureScope;
  friend void mark_uncapturable(const std::string& reason);
  friend Backend* capture_backend_for(Device device);
  friend void retain_for_replay(std::shared_ptr<const void> owner);
  friend bool from_capture_pool(const memory::Allocator& allocator);
  Device device_;
  std::vector<std::function<void()>> calls_;
  std::vector<const char*> names_;  // __func__ of each call's backend method
  std::vector<std::shared_ptr<const void>> retained_;
  std::optional<std::string> invalid_;
  PrivatePool* pool_;  // frees itself once the recording is gone and no tensor holds a block
  std::unique_ptr<Backend> recorder_;
  bool graph_tried_ = false;
  std::unique_ptr<ReplayGraph> graph_;
  std::string replay_mode_;
};

// Records the calls this thread makes through backend_for(recording.device()) until it ends.
class CaptureScope {
 public:
  explicit CaptureScope(KernelRecording& recording);
  ~CaptureScope();
  CaptureScope(const CaptureScope&) = delete;
  CaptureScope& operator=(const CaptureScope&) = delete;

 private:
  KernelRecording* previous_;
};

// True while this thread is capturing.
bool is_capturing();
// Keeps `owner` (a buffer's storage) alive as long as the active recording (if any): a replay
// writes into every buffer it recorded, including ones made before the capture.
void retain_for_replay(std::shared_ptr<const void> owner);
// True for memory from the active recording's own pool, which keeps it for the recording's
// lifetime: such a buffer needs no retain_for_replay, and holding it would make every
// gradient made in the capture look shared (the autograd engine then copies it).
bool from_capture_pool(const memory::Allocator& allocator);
// Marks the active capture (if any) as not replayable, with the reason.
void mark_uncapturable(const std::string& reason);

// The backend that backend_for() should return for `device` on this thread while capturing, or
// null (used by backend_registry.cpp).
Backend* capture_backend_for(Device device);

}  // namespace accel
