// Slurm's command-line tools as the executor uses them: running one with a deadline and its
// output captured, and reading what squeue and sacct print. Parsing is separate from running,
// so it is tested without a cluster (tests/runtime/slurm_cli_test.cpp).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "accel/runtime/executor.h"

namespace accel::runtime::slurm {

struct ToolResult {
  int status = -1;  // the exit status; -1 when it did not exit by itself within the deadline
  std::string out, err;
};

// Runs `argv` (argv[0] a path) with the service's environment (Slurm's tools need SLURM_CONF
// and friends), stdin from /dev/null; kills it after `timeout_s`. Throws Error when it cannot
// start.
ToolResult run_tool(const std::vector<std::string>& argv, double timeout_s);
// A tool's message as the service quotes it: its first line, or "(no message)".
std::string first_line(const std::string& text);

// One job as squeue prints it with kSqueueFormat.
struct QueuedJob {
  std::string id, state, reason, nodes, gres, time_used, time_limit, name;
};
// %i job id, %T state, %r reason, %N nodes, %b gres per node, %M time used, %l time limit, %j name.
inline constexpr const char* kSqueueFormat = "%i|%T|%r|%N|%b|%M|%l|%j";
std::map<std::string, QueuedJob> parse_squeue(const std::string& text);

// sacct -n -P -X -o JobID,State,JobName: id -> its state ("CANCELLED by 0" becomes "CANCELLED")
// and name. A requeued job's runs (--duplicates) leave its last.
struct AccountedJob {
  std::string state, name;
};
std::map<std::string, AccountedJob> parse_sacct(const std::string& text);

// A Slurm job state as the service's worker status: pending, running or ended (with why).
WorkerStatus worker_status(const std::string& state);

// sbatch --parsable prints "<id>" or "<id>;<cluster>".
std::optional<std::string> parse_job_id(const std::string& text);

// Sizes as sstat prints them ("1234K", "5.50M", "2G", "812") in bytes; times ("1-02:03:04",
// "02:03.500", "00:01:02") in seconds.
double parse_size(const std::string& text);
double parse_duration(const std::string& text);

// `text` as one word of a POSIX shell command line: in single quotes, each ' as '\''.
std::string shell_quote(const std::string& text);

// The time limit for sbatch --time: whole minutes, rounded up, at least 1.
long long time_limit_minutes(double seconds);

}  // namespace accel::runtime::slurm
