// The job monitor: `accel __job-monitor --exit F --output F --workdir D [--uid U --gid G] -- CMD`
// is started (posix_spawn) in a runtime's process group for each job. It runs the command with
// its output in F, ignores SIGTERM itself (the command gets it and may checkpoint), and records
// the command's exit status (128 + signal for a signal) in the exit file, so the status
// survives a restart of the daemon. A separate small process rather than a fork of the daemon:
// forking the multithreaded daemon copied its page tables on every job.
#pragma once

namespace accel::runtime {

// argv as given to main (argv[1] == "__job-monitor"); returns the process exit status.
int job_monitor_main(int argc, char** argv);

}  // namespace accel::runtime
