// Starts the real `accel serve` daemon on a loopback port with a temporary data folder,
// simulated devices and second-scale limits, with users of each tier; talks to it over HTTP.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "../support/command.h"
#include "../support/niceness.h"

namespace accel::testing {

using Json = nlohmann::json;

struct Reply {
  int status = 0;
  Json body;
};

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The server closes a connection whose body it refuses (413) without reading it: a client
    // still sending gets EPIPE, which must fail its request, not kill the test process.
    signal(SIGPIPE, SIG_IGN);
    dir_ = std::filesystem::temp_directory_path() / ("accel_service_" + std::to_string(getpid()) + "_" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms::all, std::filesystem::perm_options::add);
    // A uid range of this test's own: ctest runs tests side by side, and a service ending a
    // tenant's last runtime kills every process of the tenant's uid (another test's jobs, had
    // they the same uid).
    const std::string uids =
        R"("tenant_uid_first": )" + std::to_string(400000 + (getpid() % 4000) * 25) + R"(, "tenant_uid_count": 25,)";
    std::ofstream(dir_ / "config.json") << R"({
      "discover_gpus": false, "allow_unisolated": true, )" +
                                               uids + R"(
      )" + devices_config() + extra_config() + R"(
      "tick_s": 0.05, "preemption_grace_s": 1.0, "delete_grace_s": 1.0, "warning_lead_s": 0.8,
      "max_connections_per_address": 400,
      "tiers": {
        "free": {"idle_timeout_s": 1.5, "max_lifetime_s": 600},
        "pro": {"idle_timeout_s": 600},
        "pro_plus": {"idle_timeout_s": 1.5},
        "short": {"accelerator_types": ["cpu"], "max_runtimes": 2, "max_lifetime_s": 1.5, "idle_timeout_s": 600,
                  "priority": 0, "preemptible": true, "background_execution": true},
        "boxed": {"accelerator_types": ["cpu"], "max_runtimes": 2, "idle_timeout_s": 600,
                  "background_execution": true,
                  "runtime_limits": {"memory_gb": 0.0625, "max_processes": 24, "cpus": 0.5}}
      }})";
    for (const auto& [name, tier] : std::map<std::string, std::string>{{"alice", "free"},
                                                                       {"bob", "free"},
                                                                       {"paula", "pro"},
                                                                       {"pete", "pro_plus"},
                                                                       {"sam", "short"},
                                                                       {"carl", "boxed"}}) {
      tokens_[name] = add_user(name, tier, false);
    }
    tokens_["root"] = add_user("root", "enterprise", true);
    start_daemon();
  }

  // More of the service's config ("key": value, with a trailing comma), for a fixture's variant.
  virtual std::string extra_config() const { return ""; }
  // The accelerators offered: simulated ones on this machine, unless a variant offers others.
  virtual std::string devices_config() const {
    return R"("simulated_devices": [{"type": "t4", "count": 1}, {"type": "a100", "count": 1}],)";
  }

  void TearDown() override {
    stop_daemon(SIGTERM);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string add_user(const std::string& name, const std::string& tier, bool admin) {
    const auto r = run_command(std::string(ACCEL_CLI_PATH) + " admin user add " + name + " --tier " + tier +
                               (admin ? " --admin" : "") + " --data-dir " + (dir_ / "data").string() + " --config " +
                               (dir_ / "config.json").string());
    EXPECT_EQ(r.status, 0) << r.output;
    const auto at = r.output.find("acc_");
    return at == std::string::npos ? "" : r.output.substr(at, r.output.find('\n', at) - at);
  }

  void start_daemon() {
    std::filesystem::remove(dir_ / "port");
    setenv("ACCEL_TEST_DAEMON_SECRET", "not-for-jobs", 1);  // the daemon's environment stays its own
    daemon_ = fork();
    if (daemon_ == 0) {
      const std::string log = (dir_ / "serve.log").string();
      freopen(log.c_str(), "a", stdout);
      freopen(log.c_str(), "a", stderr);
      execl(ACCEL_CLI_PATH, ACCEL_CLI_PATH, "serve", "--config", (dir_ / "config.json").c_str(), "--data-dir",
            (dir_ / "data").c_str(), "--listen", ("127.0.0.1:" + std::to_string(port_)).c_str(), "--port-file",
            (dir_ / "port").c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(dir_ / "port"); }, 10.0)) << log();
    std::ifstream(dir_ / "port") >> port_;
  }

  void stop_daemon(int signal) {
    if (daemon_ <= 0) return;
    kill(daemon_, signal);
    waitpid(daemon_, nullptr, 0);
    daemon_ = 0;
  }

  std::string log() const {
    std::ifstream in(dir_ / "serve.log");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10);
    c.set_tcp_nodelay(true);
    return c;
  }

  Reply call(const std::string& method, const std::string& user, const std::string& path,
             const std::string& body = "") {
    httplib::Client c = client();
    httplib::Headers headers;
    if (!user.empty()) headers.emplace("Authorization", "Bearer " + tokens_.at(user));
    httplib::Result r = method == "GET"      ? c.Get(path, headers)
                        : method == "DELETE" ? c.Delete(path, headers)
                                             : c.Post(path, headers, body, "application/json");
    if (!r) return {-1, Json()};
    return {r->status, Json::parse(r->body, nullptr, false)};
  }
  Reply post(const std::string& user, const std::string& path, const Json& body) {
    return call("POST", user, path, body.dump());
  }
  Reply get(const std::string& user, const std::string& path) { return call("GET", user, path); }

  std::string create(const std::string& user, const std::string& type, int expected_status = 201) {
    const Reply r = post(user, "/v1/runtimes", {{"type", type}});
    EXPECT_EQ(r.status, expected_status) << r.body.dump();
    return r.body.is_object() && r.body.contains("id") ? r.body["id"].get<std::string>() : "";
  }
  Json runtime(const std::string& user, const std::string& id) { return get(user, "/v1/runtimes/" + id).body; }
  std::string state(const std::string& user, const std::string& id) { return runtime(user, id)["state"]; }
  // The worker's PID: the local executor's handle is "<pid>:<start time>:<runtime id>" ("" = none).
  int worker_pid(const std::string& user, const std::string& id) {
    return std::atoi(runtime(user, id).value("worker", "").c_str());
  }
  std::string job(const std::string& user, const std::string& id, const std::vector<std::string>& command) {
    const Reply r = post(user, "/v1/runtimes/" + id + "/jobs", {{"command", command}});
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body.value("id", "");
  }
  Json job_state(const std::string& user, const std::string& id, const std::string& job_id) {
    return get(user, "/v1/runtimes/" + id + "/jobs/" + job_id).body;
  }
  std::string output(const std::string& user, const std::string& id, const std::string& job_id) {
    httplib::Client c = client();
    auto r = c.Get("/v1/runtimes/" + id + "/jobs/" + job_id + "/output?offset=0",
                   httplib::Headers{{"Authorization", "Bearer " + tokens_.at(user)}});
    return r ? r->body : "";
  }
  // `accel run ID -- COMMAND` as `user`, against this daemon (COMMAND: shell words).
  CommandResult accel_run(const std::string& user, const std::string& id, const std::string& command) {
    return run_command("ACCEL_SERVER=http://127.0.0.1:" + std::to_string(port_) + " ACCEL_TOKEN=" + tokens_.at(user) +
                       " " + ACCEL_CLI_PATH + " run " + id + " -- " + command);
  }
  bool has_event(const std::string& user, const std::string& id, const std::string& kind,
                 const std::string& text = "") {
    for (const Json& e : get(user, "/v1/runtimes/" + id + "/events").body) {
      if (e["kind"] == kind && e["message"].get<std::string>().find(text) != std::string::npos) return true;
    }
    return false;
  }

  static bool wait_until(const std::function<bool()>& condition, double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      if (condition()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return condition();
  }

  std::filesystem::path dir_;
  std::map<std::string, std::string> tokens_;
  pid_t daemon_ = 0;
  int port_ = 0;
};

}  // namespace accel::testing
