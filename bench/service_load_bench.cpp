// Load on `accel serve`: 100 concurrent clients create and delete 1,000 runtimes on simulated
// T4s; reports throughput, admission (create) latency p50/p99, errors, and the daemon's memory
// after each round (it must stay flat).
//
// Each client is a keep-alive HTTP/1.1 connection that creates a runtime, deletes it, and
// repeats. One thread drives all of them through epoll, as load generators such as wrk do:
// 100 client threads on this 2-core machine took CPU from the daemon and their own scheduling
// delays showed up as server latency. Each round opens fresh connections.
//
//   build/service_load_bench [--clients 100] [--runtimes 1000] [--rounds 3] [--accel build/accel]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <strings.h>
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

// One client connection: sends a request, collects the whole response, then the next request.
// Edge-triggered epoll: a level-triggered EPOLLOUT on an idle writable socket spins the loop.
struct Connection {
  int fd = -1;
  std::string out;       // bytes still to send
  std::string in;        // response bytes received so far
  bool creating = true;  // the request in flight is a create (else a delete)
  Clock::time_point sent;
};

int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int yes = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);  // EINPROGRESS: epoll says when
  return fd;
}

// A complete response in `in`: its status and body, removed from `in`; else false.
bool take_response(std::string& in, int& status, std::string& body) {
  const auto end = in.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::size_t length = 0;
  for (std::size_t at = in.find("\r\n"); at < end; at = in.find("\r\n", at + 2)) {
    if (strncasecmp(in.c_str() + at + 2, "Content-Length:", 15) == 0) length = std::stoul(in.substr(at + 17));
  }
  if (in.size() < end + 4 + length) return false;
  status = std::atoi(in.c_str() + 9);  // "HTTP/1.1 201 Created"
  body = in.substr(end + 4, length);
  in.erase(0, end + 4 + length);
  return true;
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
  const std::string add = accel + " admin user add load --tier load --config " + (dir / "config.json").string() +
                          " --data-dir " + (dir / "data").string() + " 2>/dev/null";
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

  const std::string auth = "Authorization: Bearer " + bearer + "\r\n";
  const std::string create_body = R"({"type": "gpu:t4", "wait": false})";
  const std::string create_request =
      "POST /v1/runtimes HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
      "Content-Type: application/json\r\nContent-Length: " + std::to_string(create_body.size()) + "\r\n\r\n" +
      create_body;
  const auto delete_request = [&](const std::string& id) {
    return "DELETE /v1/runtimes/" + id + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "\r\n";
  };

  const auto round = [&](std::vector<double>& create_ms, std::vector<double>& delete_ms, int& errors) {
    int started = 0, finished = 0, failed = 0;
    const int epoll = epoll_create1(0);
    std::vector<Connection> connections(clients);
    const auto send_some = [&](Connection& c) {
      const ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n > 0) c.out.erase(0, static_cast<std::size_t>(n));
    };
    const auto next_create = [&](Connection& c) {
      if (started >= runtimes) return false;
      ++started;
      c.creating = true;
      c.out = create_request;
      c.sent = Clock::now();
      send_some(c);
      return true;
    };
    const auto start = Clock::now();
    for (int i = 0; i < clients; ++i) {
      Connection& c = connections[i];
      c.fd = connect_to(port);
      epoll_event ev{EPOLLIN | EPOLLOUT | EPOLLET, {.u32 = static_cast<std::uint32_t>(i)}};
      epoll_ctl(epoll, EPOLL_CTL_ADD, c.fd, &ev);
      next_create(c);
    }
    std::vector<epoll_event> events(clients);
    while (finished + failed < started || started < runtimes) {
      const int n = epoll_wait(epoll, events.data(), clients, 10000);
      if (n <= 0) {
        std::fprintf(stderr, "no answer for 10 s: %d of %d runtimes done\n", finished, runtimes);
        failed += started - finished - failed;
        break;
      }
      for (int e = 0; e < n; ++e) {
        Connection& c = connections[events[e].data.u32];
        if (!c.out.empty()) send_some(c);
        char buffer[16384];
        ssize_t got;
        while ((got = recv(c.fd, buffer, sizeof buffer, 0)) > 0) c.in.append(buffer, static_cast<std::size_t>(got));
        int status = 0;
        std::string body;
        if (!take_response(c.in, status, body)) continue;
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - c.sent).count();
        if (c.creating) {
          if (status != 201) {
            if (failed++ < 3) std::fprintf(stderr, "create failed: %d %s\n", status, body.c_str());
            next_create(c);
            continue;
          }
          create_ms.push_back(ms);
          c.creating = false;
          c.out = delete_request(nlohmann::json::parse(body)["id"]);
          c.sent = Clock::now();
          send_some(c);
        } else {
          delete_ms.push_back(ms);
          if (status == 200) {
            ++finished;
          } else {
            ++failed;
          }
          next_create(c);
        }
      }
    }
    for (Connection& c : connections) close(c.fd);
    close(epoll);
    errors = failed;
    return std::chrono::duration<double>(Clock::now() - start).count();
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
