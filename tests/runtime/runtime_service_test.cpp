// RuntimeService as a library (no HTTP): a relative data folder, and a job's output and status.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "../support/niceness.h"
#include "accel/core/error.h"
#include "accel/runtime/runtime_service.h"
#include "accel/runtime/token.h"

using namespace accel::runtime;

namespace {

// The defaults, with no GPU discovery, runnable by a developer who is not root, and a tenant uid
// range of this test's own (ctest runs tests side by side; services with overlapping ranges
// refuse to start).
ServiceConfig test_config() {
  ServiceConfig config = ServiceConfig::defaults();
  config.allow_unisolated = true;
  config.tenant_uid_first = 350000 + (getpid() % 1000) * 10;
  config.tenant_uid_count = 10;
  config.discover_gpus = false;
  return config;
}

}  // namespace

TEST(RuntimeService, RelativeDataFolderAndAJobsOutputAndStatus) {
  const auto root = std::filesystem::temp_directory_path() / ("accel_rs_" + std::to_string(getpid()));
  std::filesystem::create_directories(root);
  std::filesystem::permissions(root, std::filesystem::perms::all, std::filesystem::perm_options::add);
  const auto previous = std::filesystem::current_path();
  std::filesystem::current_path(root);
  {
    ServiceConfig config = test_config();
    config.simulated.push_back({"t4", 1});
    config.accel_executable = ACCEL_CLI_PATH;  // job monitors run in the accel binary, not this test
    RuntimeService service(config, "data", /*start_ticker=*/false);
    service.store().add_user({"ann", "free", false}, hash_token("acc_ann"));
    const User ann = service.authenticate("Bearer acc_ann");
    const Json rt = service.create(ann, {{"type", "gpu:t4"}});
    EXPECT_EQ(rt["state"], "running");
    EXPECT_EQ(rt["simulated"], true);
    EXPECT_TRUE(std::filesystem::path(rt["workdir"].get<std::string>()).is_absolute());
    const Json job = service.run_job(ann, rt["id"], {{"command", {"sh", "-c", "echo on $ACCEL_DEVICE; exit 4"}}});
    Json state;
    for (int i = 0; i < 200; ++i) {
      service.tick();
      state = service.job(ann, rt["id"], job["id"]);
      if (state["state"] != "running") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    EXPECT_EQ(state["state"], "exited");
    EXPECT_EQ(state["exit_code"], 4);
    bool done = false;
    EXPECT_EQ(service.job_output(ann, rt["id"], job["id"], 0, done), "on sim:0\n");
    EXPECT_TRUE(done);
    EXPECT_THROW(service.authenticate("Bearer acc_nobody"), ApiError);
    service.remove(ann, rt["id"]);
  }
  std::filesystem::current_path(previous);
  std::filesystem::remove_all(root);
}

TEST(RuntimeService, ADataFolderTenantsCannotReachIsRefusedWithTheFix) {
  if (geteuid() != 0) GTEST_SKIP() << "privileges are dropped (and checked) only when the service runs as root";
  const auto root = std::filesystem::temp_directory_path() / ("accel_private_" + std::to_string(getpid()));
  std::filesystem::create_directories(root);
  std::filesystem::permissions(root, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
  ServiceConfig config = test_config();
  config.accel_executable = ACCEL_CLI_PATH;
  try {
    RuntimeService service(config, (root / "data").string(), /*start_ticker=*/false);
    FAIL() << "expected a ValueError: tenants cannot search " << root;
  } catch (const accel::ValueError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("tenants' jobs (each user's own uid) cannot reach"), std::string::npos) << message;
    EXPECT_NE(message.find("chmod o+x " + root.string()), std::string::npos) << message;
  }
  std::filesystem::permissions(root, std::filesystem::perms::all, std::filesystem::perm_options::add);
  EXPECT_NO_THROW(RuntimeService(config, (root / "data").string(), false));
  std::filesystem::remove_all(root);
}

// A tier's limit lowers and never raises: above the machine's hard limit (an H200 host refused
// 65,536 open files), the job keeps the machine's limit and still runs.
TEST(JobMonitor, LimitsAboveTheHardLimitKeepTheMachinesAndTheJobRuns) {
  const auto dir = std::filesystem::temp_directory_path() / ("accel_monitor_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  const std::string command = std::string(ACCEL_CLI_PATH) + " __job-monitor --exit " + (dir / "exit").string() +
                              " --output " + (dir / "out").string() + " --nofile 4000000000 --nice 3" +
                              " -- sh -c \"grep '^Max open files' /proc/self/limits | tr -s ' ' | cut -d' ' -f4-5;"
                              " cut -d' ' -f19 /proc/self/stat\"";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream exit_file(dir / "exit"), out_file(dir / "out");
  int code = -1;
  exit_file >> code;
  EXPECT_EQ(code, 0);
  const std::string hard = files.rlim_max == RLIM_INFINITY ? "unlimited" : std::to_string(files.rlim_max);
  std::stringstream out;
  out << out_file.rdbuf();
  EXPECT_EQ(out.str(), hard + " " + hard + "\n" + accel::testing::niced(3) + "\n");
  std::filesystem::remove_all(dir);
}

// accel_jobs_total is a Prometheus counter: it must not go down when ended runtimes (and their
// jobs) leave the service's memory after keep_terminated_s.
TEST(RuntimeService, TheJobsCounterNeverGoesDown) {
  const auto root = std::filesystem::temp_directory_path() / ("accel_counter_" + std::to_string(getpid()));
  std::filesystem::create_directories(root);
  std::filesystem::permissions(root, std::filesystem::perms::all, std::filesystem::perm_options::add);
  {
    ServiceConfig config = test_config();
    config.keep_terminated_s = 0;  // ended runtimes leave memory at the next tick
    config.accel_executable = ACCEL_CLI_PATH;
    RuntimeService service(config, (root / "data").string(), /*start_ticker=*/false);
    service.store().add_user({"ann", "pro", false}, hash_token("acc_ann"));
    const User ann = service.authenticate("Bearer acc_ann");
    const auto total = [&] {
      const std::string m = service.metrics();
      const auto at = m.find("\naccel_jobs_total ");
      return std::stoi(m.substr(at + 18));
    };
    const Json rt = service.create(ann, {{"type", "cpu"}});
    const Json first = service.run_job(ann, rt["id"], {{"command", {"true"}}});
    service.run_job(ann, rt["id"], {{"command", {"true"}}});
    EXPECT_EQ(total(), 2);
    EXPECT_NO_THROW(service.job(ann, rt["id"], first["id"]));
    service.remove(ann, rt["id"]);  // no grace on delete: terminated at once
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      service.tick();
    }
    EXPECT_THROW(service.job(ann, rt["id"], first["id"]), ApiError);  // the runtime and its jobs left memory ...
    EXPECT_EQ(total(), 2);                                            // ... the counter did not go down
  }
  std::filesystem::remove_all(root);
}

// A job that checkpointed and exited 75 just before its runtime's kill (the grace period ran out,
// or a restart came) is recorded by the kill, not the tick: its job_finished event still tells
// the owner to resume. No ticker runs here, so only the kill can see the job's end.
TEST(RuntimeService, AJobThatEndedJustBeforeTheKillStillSaysResume) {
  const auto root = std::filesystem::temp_directory_path() / ("accel_resume_" + std::to_string(getpid()));
  std::filesystem::create_directories(root);
  std::filesystem::permissions(root, std::filesystem::perms::all, std::filesystem::perm_options::add);
  {
    ServiceConfig config = test_config();
    config.accel_executable = ACCEL_CLI_PATH;
    const std::string data = (root / "data").string();
    RuntimeService service(config, data, /*start_ticker=*/false);
    service.store().add_user({"ann", "pro", false}, hash_token("acc_ann"));
    const User ann = service.authenticate("Bearer acc_ann");
    const Json rt = service.create(ann, {{"type", "cpu"}});
    const std::string id = rt["id"];
    const Json job = service.run_job(ann, id, {{"command", {"sh", "-c", "exit 75"}}});
    const std::string exit_file = data + "/jobs/" + id + "/" + job["id"].get<std::string>() + ".exit";
    for (int i = 0; i < 400 && !std::filesystem::exists(exit_file); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(std::filesystem::exists(exit_file)) << "the job's monitor never wrote " << exit_file;
    EXPECT_EQ(service.job(ann, id, job["id"])["state"], "running");  // no tick has seen it
    service.restart(ann, id);
    const Json ended = service.job(ann, id, job["id"]);
    EXPECT_EQ(ended["state"], "exited");
    EXPECT_EQ(ended["exit_code"], 75);
    bool told = false;
    for (const Json& e : service.events(ann, id))
      told |= e["kind"] == "job_finished" &&
              e["message"].get<std::string>().find("run it again with --resume") != std::string::npos;
    EXPECT_TRUE(told) << service.events(ann, id).dump();
    service.remove(ann, id);
  }
  std::filesystem::remove_all(root);
}
