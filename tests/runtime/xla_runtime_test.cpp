// The service's TPU runtimes through PJRT (docs/xla.md): with `xla_devices` in the config, a
// `tpu` runtime gets the plugin in its environment, and `accel train` inside trains on it. The
// CPU plugin stands in for the TPU here, so the runtime says it is simulated.
#include "accel/hw/pjrt_plugin_search.h"
#include "service_fixture.h"

using accel::testing::Json;
using accel::testing::ServiceTest;

namespace {

std::string cpu_plugin() {
  try {
    return accel::hw::find_pjrt_plugin("cpu").path;
  } catch (const accel::hw::PjrtPluginError&) {
    return "";
  }
}

class XlaServiceTest : public ServiceTest {
 protected:
  void SetUp() override {
    if (cpu_plugin().empty()) GTEST_SKIP() << "no XLA CPU PJRT plugin (scripts/pjrt-plugin.sh installs it)";
    ServiceTest::SetUp();
  }
  std::string extra_config() const override {
    return R"("xla_devices": [{"type": "v2-8", "plugin": ")" + cpu_plugin() + R"("}],)";
  }
};

}  // namespace

TEST_F(XlaServiceTest, ATpuRuntimeGetsThePluginAndAccelTrainInsideTrainsOnIt) {
  // The enterprise tier: it caps no address space, which an ASan build of accel needs (its
  // shadow memory is ~20 TB of it); a stand-in TPU keeps the tier's cap, as a simulated GPU does.
  const std::string user = "root";
  const std::string id = create(user, "tpu");
  ASSERT_TRUE(wait_until([&] { return state(user, id) == "running"; }, 10)) << runtime(user, id).dump();
  const Json rt = runtime(user, id);
  EXPECT_EQ(rt["type"], "v2-8");
  EXPECT_TRUE(rt["simulated"].get<bool>());
  EXPECT_NE(rt["accelerator_name"].get<std::string>().find("TPU v2-8 (simulated by the PJRT plugin " + cpu_plugin()),
            std::string::npos)
      << rt.dump();
  const std::string train =
      job(user, id,
          {"sh", "-c",
           "echo plugin=$ACCEL_PJRT_PLUGIN device=$ACCEL_DEVICE simulated=$ACCEL_SIMULATED; accel train --epochs 1 "
           "--batch-size 1000"});
  ASSERT_TRUE(wait_until([&] { return job_state(user, id, train)["state"] == "exited"; }, 120))
      << output(user, id, train);
  const std::string out = output(user, id, train);
  EXPECT_EQ(job_state(user, id, train)["exit_code"], 0) << out;
  EXPECT_NE(out.find("plugin=" + cpu_plugin() + " device=xla simulated=1"), std::string::npos) << out;
  EXPECT_NE(out.find("on xla:0 (PJRT cpu plugin, 1 replica)"), std::string::npos) << out;
  EXPECT_NE(out.find("device: auto: using xla from ACCEL_DEVICE (the runtime's lease)"), std::string::npos) << out;
  EXPECT_NE(out.find("test accuracy 0."), std::string::npos) << out;
}

// A declared TPU whose plugin is missing, or a type that is not a TPU's, stops the service at
// start with the reason, rather than offering a runtime that cannot work.
TEST(XlaServiceConfig, AMissingPluginOrANonTpuTypeStopsTheStartWithTheReason) {
  const auto dir = std::filesystem::temp_directory_path() / ("accel_xla_config_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto serve = [&](const std::string& devices) {
    // A uid range of its own: a service claims its range at start, and ctest runs services side
    // by side (300000 and up is no other test's).
    std::ofstream(dir / "config.json") << R"({"discover_gpus": false, "allow_unisolated": true, "tenant_uid_first": )" +
                                              std::to_string(300000 + (getpid() % 1000) * 10) +
                                              R"(, "tenant_uid_count": 10, "xla_devices": )" + devices + "}";
    return accel::testing::run_command(std::string(ACCEL_CLI_PATH) + " serve --config " +
                                       (dir / "config.json").string() + " --data-dir " + (dir / "data").string() +
                                       " --listen 127.0.0.1:0");
  };
  auto result = serve(R"([{"type": "v2-8", "plugin": "/nonexistent/libtpu.so"}])");
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.output.find("xla_devices v2-8: no PJRT plugin at /nonexistent/libtpu.so"), std::string::npos)
      << result.output;
  result = serve(R"([{"type": "v2-8", "plugin": "tpu"}, {"type": "v3-8", "plugin": "tpu"}])");
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.output.find("xla_devices offer libtpu 2 times"), std::string::npos) << result.output;
  result = serve(R"([{"type": "v2-8", "plugin": "cpu"}, {"type": "v2-8", "plugin": "cpu"}])");
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.output.find("xla_devices names v2-8 twice"), std::string::npos) << result.output;
  // A plugin in a folder anyone may write to: a tenant could replace what every TPU job loads.
  const auto open_dir = dir / "open";
  std::filesystem::create_directories(open_dir);
  std::filesystem::permissions(open_dir, std::filesystem::perms::all);
  std::ofstream(open_dir / "fake_pjrt.so") << "not a plugin";
  std::filesystem::permissions(open_dir / "fake_pjrt.so", std::filesystem::perms::owner_all |
                                                              std::filesystem::perms::group_read |
                                                              std::filesystem::perms::others_read);
  result = serve(R"([{"type": "v2-8", "plugin": ")" + (open_dir / "fake_pjrt.so").string() + R"("}])");
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.output.find(open_dir.string() + " is writable by other users"), std::string::npos) << result.output;
  result = serve(R"([{"type": "t4", "plugin": "cpu"}])");
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.output.find("xla_devices type 't4' is not a TPU type of the catalog"), std::string::npos)
      << result.output;
  std::filesystem::remove_all(dir);
}
