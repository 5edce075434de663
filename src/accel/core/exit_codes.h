// Exit statuses with a meaning shared by the engine's commands and the runtime service.
#pragma once

namespace accel {

// A job stopped at SIGTERM after writing a checkpoint (EX_TEMPFAIL): run it again with --resume.
// Model::fit's TrainingInterrupted; the runtime service names it in the job's events.
inline constexpr int kExitCheckpointed = 75;

}  // namespace accel
