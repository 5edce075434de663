// The runtime client's settings: the default server when neither a flag, the environment nor a
// client file names one, and a broken client file named in the error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../support/command.h"

using accel::testing::run_command;

TEST(RuntimeClient, WithoutServerSettingsItTriesTheDefaultAddressAndSaysSo) {
  const auto home = std::filesystem::temp_directory_path() / ("accel_client_home_" + std::to_string(getpid()));
  std::filesystem::create_directories(home);
  const std::string env = "env -u ACCEL_SERVER HOME=" + home.string() + " ACCEL_TOKEN=acc_x ";
  // Port 9 (discard) on loopback: nothing listens there, so the client must say it cannot reach it.
  auto r = run_command(env + ACCEL_CLI_PATH + " runtime ls --server http://127.0.0.1:9");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("cannot reach http://127.0.0.1:9"), std::string::npos) << r.output;
  r = run_command(env + ACCEL_CLI_PATH + " runtime ls");
  EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;  // was: value() on null
  std::filesystem::create_directories(home / ".config" / "accel");
  std::ofstream(home / ".config" / "accel" / "client.json") << "server = x";
  r = run_command(env + ACCEL_CLI_PATH + " runtime ls");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("client.json is not a JSON object"), std::string::npos) << r.output;
  std::filesystem::remove_all(home);
}
