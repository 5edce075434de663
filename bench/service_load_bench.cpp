// Load on `accel serve`: 100 concurrent clients create and delete 1,000 runtimes on simulated
// T4s; reports throughput, admission (create) latency p50/p99, errors, and the daemon's memory
// after each round (it must stay flat).
//
//   build/service_load_bench [--clients 100] [--runtimes 1000] [--rounds 3] [--accel build/accel]
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
    std::getline(status, key);
  }
  return -1;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 100, runtimes = 1000, rounds = 3;
  std::string accel = "build/accel";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--clients") clients = std::atoi(argv[i + 1]);
    if (flag == "--runtimes") runtimes = std::atoi(argv[i + 1]);
    if (flag == "--rounds") rounds = std::atoi(argv[i + 1]);
    if (flag == "--accel") accel = argv[i + 1];
  }
  const auto dir = std::filesystem::temp_directory_path() / ("accel_load_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"discover_gpus": false, "simulated_devices": [{"type": "t4", "count": )"
                                     << clients << R"(}], "tiers": {"load": {"accelerator_types": ["cpu", "t4"],
    "max_runtimes": 100000, "max_accelerated": 100000, "priority": 1}}, "keep_terminated_s": 2})";
  const std::string add =
      accel + " admin user add load --tier load --data-dir " + (dir / "data").string() + " 2>/dev/null";
  FILE* pipe = popen(add.c_str(), "r");
  char token[128] = {};
  if (!pipe || !fgets(token, sizeof token, pipe)) return std::fprintf(stderr, "cannot add the user\n"), 1;
  pclose(pipe);
  std::string bearer(token);
  bearer.erase(bearer.find_last_not_of("\n") + 1);

  const pid_t daemon = fork();
  if (daemon == 0) {
    freopen((dir / "serve.log").c_str(), "w", stdout);
    execl(accel.c_str(), accel.c_str(), "serve", "--config", (dir / "config.json").c_str(), "--data-dir",
          (dir / "data").c_str(), "--listen", "127.0.0.1:0", "--port-file", (dir / "port").c_str(), nullptr);
    _exit(127);
  }
  while (!std::filesystem::exists(dir / "port")) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  int port = 0;
  std::ifstream(dir / "port") >> port;
  const long rss_start = rss_kib(daemon);

  const auto round = [&](std::vector<double>& create_ms, std::vector<double>& delete_ms, int& errors) {
    std::atomic<int> next{0}, failed{0};
    std::vector<std::vector<double>> creates(clients), deletes(clients);
    std::vector<std::thread> threads;
    const auto start = Clock::now();
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        httplib::Client client("127.0.0.1", port);
        client.set_bearer_token_auth(bearer);
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true);
        while (next.fetch_add(1) < runtimes) {
          const auto t0 = Clock::now();
          auto r = client.Post("/v1/runtimes", R"({"type": "gpu:t4", "wait": false})", "application/json");
          const auto t1 = Clock::now();
          if (!r || r->status != 201) {
            if (failed++ < 3) {
              std::fprintf(
                  stderr, "create failed: %s\n",
                  r ? (std::to_string(r->status) + " " + r->body).c_str() : httplib::to_string(r.error()).c_str());
            }
            continue;
          }
          creates[c].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
          const std::string id = nlohmann::json::parse(r->body)["id"];
          const auto t2 = Clock::now();
          auto d = client.Delete("/v1/runtimes/" + id);
          deletes[c].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t2).count());
          if (!d || d->status != 200) ++failed;
        }
      });
    }
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    for (int c = 0; c < clients; ++c) {
      create_ms.insert(create_ms.end(), creates[c].begin(), creates[c].end());
      delete_ms.insert(delete_ms.end(), deletes[c].begin(), deletes[c].end());
    }
    errors = failed.load();
    return seconds;
  };

  std::printf("accel serve under load: %d concurrent clients, %d runtimes per round on %d simulated T4s\n", clients,
              runtimes, clients);
  std::printf("%-7s %10s %12s %12s %12s %12s %7s %10s\n", "round", "seconds", "runtimes/s", "create p50", "create p99",
              "delete p99", "errors", "RSS MiB");
  std::printf("%-7s %10s %12s %12s %12s %12s %7s %10.1f\n", "start", "", "", "", "", "", "", rss_start / 1024.0);
  for (int r = 1; r <= rounds; ++r) {
    std::vector<double> create_ms, delete_ms;
    int errors = 0;
    const double seconds = round(create_ms, delete_ms, errors);
    std::this_thread::sleep_for(std::chrono::seconds(3));  // ended runtimes leave memory after 2 s
    std::printf("%-7d %10.2f %12.0f %10.2fms %10.2fms %10.2fms %7d %10.1f\n", r, seconds, runtimes / seconds,
                percentile(create_ms, 0.5), percentile(create_ms, 0.99), percentile(delete_ms, 0.99), errors,
                rss_kib(daemon) / 1024.0);
  }
  kill(daemon, SIGTERM);
  waitpid(daemon, nullptr, 0);
  std::filesystem::remove_all(dir);
  return 0;
}
