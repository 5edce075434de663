// Allocator counters published for `accel smi`: this test process's sim device shows up in
// another process's `accel smi`, and records of dead processes are cleaned away.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../support/command.h"
#include "accel/memory/device_allocators.h"
#include "accel/memory/usage_publisher.h"

using namespace accel;

namespace {

// A usage folder of this test's own (set before the sim devices below are first used).
const std::string& usage_dir() {
  static const std::string dir = [] {
    const auto path = std::filesystem::temp_directory_path() / ("accel_usage_" + std::to_string(getpid()));
    std::filesystem::create_directories(path);
    setenv("ACCEL_USAGE_DIR", path.c_str(), 1);
    return path.string();
  }();
  return dir;
}

}  // namespace

TEST(UsagePublisher, AccelSmiShowsTheSimDeviceOfAnotherProcess) {
  const std::string dir = usage_dir();
  const Device sim("sim:21");
  void* block = memory::caching_allocator(sim).malloc(3 * 1024 * 1024);
  const auto records = memory::read_published_usage();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].pid, getpid());
  EXPECT_EQ(records[0].device, sim);
  EXPECT_TRUE(records[0].simulated);
  EXPECT_EQ(records[0].allocated, 3 * 1024 * 1024);
  EXPECT_EQ(records[0].reserved, 20 * 1024 * 1024);

  const std::string env = "ACCEL_USAGE_DIR=" + dir + " ACCEL_NVML_LIBRARY=" + FAKE_NVML_PATH + " ";
  const auto table = accel::testing::run_command(env + ACCEL_CLI_PATH + " smi");
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_NE(table.output.find("accel processes"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find(std::to_string(getpid()) + "   sim:21 (simulated)"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("simulated |"), std::string::npos) << table.output;
  const auto json = accel::testing::run_command(env + ACCEL_CLI_PATH + " smi --json");
  const auto doc = nlohmann::json::parse(json.output);
  ASSERT_EQ(doc["accel_processes"].size(), 1u);
  EXPECT_EQ(doc["accel_processes"][0]["device"], "sim:21");
  EXPECT_EQ(doc["accel_processes"][0]["allocated"], 3 * 1024 * 1024);
  memory::caching_allocator(sim).free(block);
  EXPECT_EQ(memory::read_published_usage()[0].allocated, 0);
}

TEST(UsagePublisher, RecordsOfDeadProcessesAreRemoved) {
  const std::string dir = usage_dir();
  // A record as a killed process would leave it: the pid of a child that has exited.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);
  {
    setenv("ACCEL_USAGE_DIR", dir.c_str(), 1);
    memory::UsagePublisher stale(Device("sim:5"), true);
    std::filesystem::copy_file(stale.path(), dir + "/accel-mem-" + std::to_string(child) + "-sim_5");
  }
  // The copy still names this process's pid inside; rewrite it to the dead child's.
  const std::string copy = dir + "/accel-mem-" + std::to_string(child) + "-sim_5";
  std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(8);
  const std::int32_t dead = child;
  f.write(reinterpret_cast<const char*>(&dead), sizeof dead);
  f.close();
  for (const auto& u : memory::read_published_usage()) EXPECT_NE(u.pid, child);
  EXPECT_FALSE(std::filesystem::exists(copy));
}
