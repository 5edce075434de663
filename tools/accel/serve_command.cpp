// accel serve: the runtime service daemon (accel admin, its users: admin_command.cpp).
#include <signal.h>

#include <filesystem>

#include <cstdio>
#include <fstream>
#include <thread>

#include "accel/core/error.h"
#include "accel/runtime/http_api.h"
#include "accel/runtime/runtime_service.h"
#include "accel/runtime/token.h"
#include "commands.h"

namespace accel::cli {
namespace {

struct ServeOptions {
  std::string config;
  std::string data_dir = "accel-data";
  std::string listen = "127.0.0.1:8470";
  std::string port_file;
};

int run_serve(const ServeOptions& o) {
  const auto colon = o.listen.rfind(':');
  if (colon == std::string::npos) throw ValueError("--listen must be HOST:PORT, got '" + o.listen + "'");
  const std::string host = o.listen.substr(0, colon);
  int port = 0;
  try {
    port = std::stoi(o.listen.substr(colon + 1));
  } catch (const std::exception&) {
    throw ValueError("--listen must be HOST:PORT, got '" + o.listen + "'");
  }
  // Signals go to one thread that stops the server; the others never see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  runtime::ServiceConfig config =
      o.config.empty() ? runtime::ServiceConfig::defaults() : runtime::ServiceConfig::load(o.config);
  runtime::RuntimeService service(config, o.data_dir);
  runtime::HttpApi api(service);
  const int bound = api.bind(host, port);
  if (bound <= 0) throw Error("cannot listen on " + o.listen + " (in use, or not an address of this machine)");
  if (!o.port_file.empty()) {
    std::ofstream(o.port_file + ".tmp") << bound << "\n";
    std::rename((o.port_file + ".tmp").c_str(), o.port_file.c_str());
  }
  std::printf("accel serve: listening on http://%s:%d, data in %s, %zu accelerator(s):", host.c_str(), bound,
              o.data_dir.c_str(), service.inventory().size());
  for (const auto& a : service.inventory()) std::printf(" %s=%s", a.id.c_str(), a.name.c_str());
  std::printf("\n");
  std::fflush(stdout);
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    std::printf("accel serve: signal %d, stopping (runtimes end with reason 'service shutdown')\n", signal);
    std::fflush(stdout);
    api.stop();
  });
  api.serve();
  service.shutdown();
  pthread_kill(waiter.native_handle(), SIGTERM);  // harmless if it already returned
  waiter.join();
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* serve = app.add_subcommand("serve", "Run the runtime service (REST API, scheduler, workers)");
  serve->add_option("--config", o->config, "Service config JSON (tiers, simulated devices, timing; docs/runtime.md)");
  serve->add_option("--data-dir", o->data_dir, "Where the database and runtime folders live")->capture_default_str();
  serve->add_option("--listen", o->listen, "HOST:PORT (port 0 picks a free one)")->capture_default_str();
  serve->add_option("--port-file", o->port_file, "Write the bound port here once listening");
  serve->callback([o, &exit_code] { exit_code = run_serve(*o); });
}

}  // namespace accel::cli
