// `accel smi` and `accel info` checked field by field against the fake NVML library, and the
// real no-GPU path.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../support/command.h"

using accel::testing::run_command;

namespace {

const std::string kCli = ACCEL_CLI_PATH;
const std::string kWithFake = std::string("ACCEL_NVML_LIBRARY=") + FAKE_NVML_PATH + " ";

}  // namespace

TEST(SmiCommand, QueryGpuCsvLikeNvidiaSmi) {
  const auto r =
      run_command(kWithFake + kCli + " smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output,
            "name, memory.total [MiB], memory.used [MiB], driver_version\n"
            "Tesla T4, 15360 MiB, 0 MiB, 550.54.15\n"
            "NVIDIA A100-SXM4-80GB, 81920 MiB, 2048 MiB, 550.54.15\n");
}

// nvidia-smi's short names (clocks.sm) print under the long ones, as nvidia-smi does; free and
// reserved come from NVML's v2 memory query. The old-driver library has neither: N/A and 0.
TEST(SmiCommand, ClocksAndReservedMemoryWithNvidiaSmisAliases) {
  const std::string query =
      " smi --query-gpu=clocks.sm,clocks.max.sm,clocks.mem,memory.free,memory.reserved --format=csv";
  const auto r = run_command(kWithFake + kCli + query);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output,
            "clocks.current.sm [MHz], clocks.max.sm [MHz], clocks.current.memory [MHz], memory.free [MiB], "
            "memory.reserved [MiB]\n"
            "300 MHz, 1410 MHz, 1593 MHz, 15104 MiB, 256 MiB\n"
            "1410 MHz, 1410 MHz, 1593 MHz, 79616 MiB, 256 MiB\n");
  const auto old =
      run_command(std::string("ACCEL_NVML_LIBRARY=") + FAKE_NVML_MINIMAL_PATH + " " + kCli + query + ",noheader");
  ASSERT_EQ(old.status, 0) << old.output;
  EXPECT_EQ(old.output, "[N/A], [N/A], [N/A], 15104 MiB, 0 MiB\n[N/A], [N/A], [N/A], 79616 MiB, 0 MiB\n");
}

TEST(SmiCommand, QueryGpuWithoutHeaderOrUnitsAndNotApplicableFields) {
  const auto r = run_command(kWithFake + "FAKE_NVML_MODE=no_temperature " + kCli +
                             " smi --query-gpu=index,utilization.gpu,temperature.gpu,power.draw,pstate,"
                             "compute_mode,mig.mode.current,compute_cap --format=csv,noheader,nounits");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output,
            "0, 0, [N/A], 9.00, P8, Default, Disabled, 7.5\n"
            "1, 37, [N/A], 123.46, P0, Exclusive_Process, Enabled, 8.0\n");
}

TEST(SmiCommand, UnknownFieldIsAnErrorListingTheValidOnes) {
  const auto r = run_command(kWithFake + kCli + " smi --query-gpu=name,fan.speed");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("\"fan.speed\" is not a valid field"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("memory.total"), std::string::npos) << r.output;
  EXPECT_EQ(run_command(kWithFake + kCli + " smi --query-gpu=name --format=xml").status, 1);
}

TEST(SmiCommand, TableShowsEveryGpuAndTheProcess) {
  const auto r = run_command(kWithFake + kCli + " smi");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* expected : {"Driver Version: 550.54.15", "CUDA Version: 12.4", "Tesla T4", "NVIDIA A100-SXM4-80GB",
                               "00000000:00:05.0", "0MiB / 15360MiB", "2048MiB / 81920MiB", "41C", "P8", "9W / 70W",
                               "123W / 400W", "37%", "E. Process", "catalog: A100 80GB", "Processes:"}) {
    EXPECT_NE(r.output.find(expected), std::string::npos) << "missing " << expected << " in\n" << r.output;
  }
  // Every table line has nvidia-smi's 91-column width.
  std::size_t start = 0;
  while (start < r.output.size()) {
    const std::size_t end = r.output.find('\n', start);
    const std::string row = r.output.substr(start, end - start);
    if (!row.empty() && (row[0] == '|' || row[0] == '+')) {
      EXPECT_EQ(row.size(), 91u) << row;
    }
    start = end + 1;
  }
}

TEST(SmiCommand, JsonMatchesTheFakeDevices) {
  const auto r = run_command(kWithFake + kCli + " smi --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["schema"], "accel.smi/1");
  EXPECT_EQ(j["nvml"]["driver_version"], "550.54.15");
  ASSERT_EQ(j["gpus"].size(), 2u);
  EXPECT_EQ(j["gpus"][0]["name"], "Tesla T4");
  EXPECT_EQ(j["gpus"][0]["memory"]["total"], 15360ull * 1024 * 1024);
  EXPECT_EQ(j["gpus"][1]["utilization"]["gpu"], 37);
  EXPECT_EQ(j["gpus"][1]["pstate"], "P0");
  EXPECT_EQ(j["gpus"][1]["mig_enabled"], true);
  EXPECT_EQ(j["gpus"][1]["compute_capability"], "8.0");
  EXPECT_EQ(j["gpus"][1]["catalog"], "A100 80GB");
  ASSERT_EQ(j["processes"].size(), 1u);
  EXPECT_EQ(j["processes"][0]["pid"], 1);
  EXPECT_EQ(j["processes"][0]["used_memory"], 2048ull * 1024 * 1024);
}

TEST(SmiCommand, LoopRepeatsTheReport) {
  const auto r = run_command(kWithFake + kCli + " smi --query-gpu=index --format=csv,noheader -l 0.05 --count 3");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "0\n1\n0\n1\n0\n1\n");
}

TEST(SmiCommand, NoGpuSaysSoAndShowsTheCpu) {
  const auto r = run_command("ACCEL_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 " + kCli + " smi");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("No NVIDIA GPU: /nonexistent/libnvidia-ml.so.1 not found"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("CPU: "), std::string::npos) << r.output;
  const auto driverless = run_command(kWithFake + "FAKE_NVML_MODE=driver_not_loaded " + kCli + " smi");
  EXPECT_EQ(driverless.status, 0);
  EXPECT_NE(driverless.output.find("No NVIDIA GPU: nvmlInit returned NVML_ERROR_DRIVER_NOT_LOADED"), std::string::npos)
      << driverless.output;
}

TEST(InfoCommand, JsonSchemaWithTheFakeGpus) {
  const auto r = run_command(kWithFake + kCli + " info --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["schema"], "accel.info/1");
  for (const char* key :
       {"gpu_available", "cuda", "cudnn", "nccl", "cublas", "nvml", "gpus", "processes", "tpu", "cpu", "ram", "disk"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["gpus"].size(), 2u);
  EXPECT_EQ(j["nvml"]["cuda_driver_version"], "12.4");
  EXPECT_GT(j["ram"]["total"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["ram"]["used"].get<std::uint64_t>(),
            j["ram"]["total"].get<std::uint64_t>() - j["ram"]["available"].get<std::uint64_t>());
  EXPECT_GE(j["cpu"]["logical_cores"].get<int>(), 1);
  EXPECT_EQ(j["cudnn"]["enabled"], j["cuda"]["built_with_cuda"].get<bool>() && j["cudnn"]["found"].get<bool>());
}

TEST(InfoCommand, TextReportOnThisMachine) {
  const auto r = run_command("ACCEL_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 " + kCli + " info");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* expected : {"GPU available:", "NVIDIA GPUs:    none: /nonexistent/libnvidia-ml.so.1 not found",
                               "CUDA runtime:", "cuDNN:", "cuDNN enabled:", "TPU:", "CPU:", "RAM:", "Disk:"}) {
    EXPECT_NE(r.output.find(expected), std::string::npos) << "missing " << expected << " in\n" << r.output;
  }
}
