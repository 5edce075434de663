// What the Slurm executor reads from Slurm's tools, without a cluster: squeue and sacct lines,
// job states as worker statuses, sizes, durations and time limits; the executor's config.
#include "accel/runtime/slurm_cli.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "accel/core/error.h"
#include "accel/runtime/service_config.h"

namespace accel::runtime::slurm {
namespace {

TEST(SlurmCli, ParsesSqueueLinesByJobId) {
  const auto jobs = parse_squeue(
      "12|RUNNING|None|node1|gres:gpu:t4:1|1:02|12:01:00|accel-rt-1\n13|PENDING|Priority|||0:00|2:00|accel-rt-2\n"
      "garbage\n");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs.at("12").state, "RUNNING");
  EXPECT_EQ(jobs.at("12").nodes, "node1");
  EXPECT_EQ(jobs.at("12").gres, "gres:gpu:t4:1");
  EXPECT_EQ(jobs.at("13").reason, "Priority");
  EXPECT_EQ(jobs.at("13").time_limit, "2:00");
  EXPECT_EQ(jobs.at("13").name, "accel-rt-2");
}

TEST(SlurmCli, ParsesSacctStatesWithoutWhoCancelled) {
  const auto jobs = parse_sacct("7|CANCELLED by 0|accel-rt-1\n8|TIMEOUT|accel-rt-2\n");
  EXPECT_EQ(jobs.at("7").state, "CANCELLED");
  EXPECT_EQ(jobs.at("7").name, "accel-rt-1");
  EXPECT_EQ(jobs.at("8").state, "TIMEOUT");
}

TEST(SlurmCli, MapsJobStatesToWorkerStatuses) {
  using State = WorkerStatus::State;
  EXPECT_EQ(worker_status("PENDING").state, State::pending);
  EXPECT_EQ(worker_status("REQUEUED").state, State::pending);
  EXPECT_EQ(worker_status("CONFIGURING").state, State::pending);
  EXPECT_EQ(worker_status("RUNNING").state, State::running);
  // In its preemption grace a job is COMPLETING; what follows says requeued or ended.
  EXPECT_EQ(worker_status("COMPLETING").state, State::running);
  EXPECT_EQ(worker_status("PREEMPTED").reason, "preempted");
  EXPECT_EQ(worker_status("TIMEOUT").reason, "max lifetime");
  EXPECT_EQ(worker_status("NODE_FAIL").reason, "node failure");
  EXPECT_EQ(worker_status("CANCELLED").state, State::ended);
  EXPECT_EQ(worker_status("COMPLETED").reason, "worker crashed");
  EXPECT_EQ(worker_status("OUT_OF_MEMORY").reason, "worker crashed");
}

TEST(SlurmCli, ReadsJobIdsSizesDurationsAndLimits) {
  EXPECT_EQ(parse_job_id("1234\n").value_or(""), "1234");
  EXPECT_EQ(parse_job_id("77;cluster2\n").value_or(""), "77");
  EXPECT_FALSE(parse_job_id("sbatch: error: x").has_value());
  EXPECT_FALSE(parse_job_id("").has_value());
  EXPECT_DOUBLE_EQ(parse_size("1024K"), 1024.0 * 1024);
  EXPECT_DOUBLE_EQ(parse_size("1.5M"), 1.5 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(parse_size("812"), 812);
  EXPECT_DOUBLE_EQ(parse_duration("00:01:02"), 62);
  EXPECT_DOUBLE_EQ(parse_duration("02:03.500"), 123.5);
  EXPECT_DOUBLE_EQ(parse_duration("1-02:03:04"), 86400 + 2 * 3600 + 3 * 60 + 4);
  EXPECT_EQ(time_limit_minutes(1), 1);
  EXPECT_EQ(time_limit_minutes(60), 1);
  EXPECT_EQ(time_limit_minutes(61.5), 2);
  EXPECT_EQ(time_limit_minutes(12 * 3600 + 90), 12 * 60 + 2);
}

TEST(SlurmCli, QuotesAWordForTheShell) {
  EXPECT_EQ(shell_quote("/var/lib/accel/slurm/started/rt-1"), "'/var/lib/accel/slurm/started/rt-1'");
  EXPECT_EQ(shell_quote("it's; rm -rf /"), "'it'\\''s; rm -rf /'");
  // The shell reads it back as the same word.
  const ToolResult echoed = run_tool({"/bin/sh", "-c", "printf %s " + shell_quote("a 'b' $HOME `x`")}, 5);
  EXPECT_EQ(echoed.out, "a 'b' $HOME `x`");
}

TEST(SlurmCli, RunsAToolWithItsOutputAndADeadline) {
  const ToolResult ok = run_tool({"/bin/sh", "-c", "echo out; echo err >&2; exit 4"}, 5);
  EXPECT_EQ(ok.status, 4);
  EXPECT_EQ(ok.out, "out\n");
  EXPECT_EQ(ok.err, "err\n");
  const ToolResult slow = run_tool({"/bin/sleep", "10"}, 0.3);
  EXPECT_EQ(slow.status, -1);
  EXPECT_NE(slow.err.find("no answer"), std::string::npos);
  EXPECT_THROW(run_tool({"/nonexistent/sbatch"}, 1), Error);
}

}  // namespace
}  // namespace accel::runtime::slurm

namespace {

// ServiceConfig::load of a config whose executor is `executor`; the error's words, or "".
std::string load_error(const std::string& executor, accel::runtime::ServiceConfig* loaded = nullptr) {
  const std::string path = "/tmp/accel_warm_config_" + std::to_string(getpid()) + ".json";
  {
    std::ofstream out(path);
    out << R"({"executor": {"kind": "slurm", "types": {"cpu": {}, "t4": {"gres": "gpu:t4:1"}}, )" << executor << "}}";
  }
  std::string error;
  try {
    const accel::runtime::ServiceConfig config = accel::runtime::ServiceConfig::load(path);
    if (loaded) *loaded = config;
  } catch (const accel::ValueError& e) {
    error = e.what();
  }
  std::remove(path.c_str());
  return error;
}

}  // namespace

TEST(SlurmConfig, WarmPoolsNameATierAndATypeItOffers) {
  accel::runtime::ServiceConfig config;
  EXPECT_EQ(load_error(R"("warm": [{"tier": "pro", "type": "t4", "count": 2}], "warm_max_age_s": 120)", &config), "");
  ASSERT_EQ(config.slurm.warm.size(), 1u);
  EXPECT_EQ(config.slurm.warm[0].tier, "pro");
  EXPECT_EQ(config.slurm.warm[0].type, "t4");
  EXPECT_EQ(config.slurm.warm[0].count, 2);
  EXPECT_EQ(config.slurm.warm_max_age_s, 120);
  // Each mistake is named, with what to change.
  EXPECT_NE(load_error(R"("warm": [{"tier": "gold", "type": "t4"}])").find("names no tier"), std::string::npos);
  EXPECT_NE(load_error(R"("warm": [{"tier": "pro", "type": "a100"}])").find("\"types\" does not map"),
            std::string::npos);
  EXPECT_NE(load_error(R"("warm": [{"tier": "free", "type": "t4", "count": 0}])").find("count must be 1..64"),
            std::string::npos);
  EXPECT_NE(load_error(R"("warm": [{"tier": "pro", "type": "t4"}, {"tier": "pro", "type": "t4"}])").find("twice"),
            std::string::npos);
  EXPECT_NE(load_error(R"("warm": {"tier": "pro"})").find("must be a list"), std::string::npos);
  EXPECT_NE(load_error(R"("warm_max_age_s": 1)").find("warm_max_age_s must be 10..86400"), std::string::npos);
}
