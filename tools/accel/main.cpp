// The `accel` command: train (the seed's model), info and smi (hardware inspection), serve,
// admin, runtime and run (the runtime service and its client).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "accel/core/error.h"
#include "accel/runtime/job_monitor.h"
#include "commands.h"

int main(int argc, char** argv) {
  // The runtime service's job monitor: an internal entry point, not a user command.
  if (argc > 1 && std::string(argv[1]) == "__job-monitor") return accel::runtime::job_monitor_main(argc, argv);
  CLI::App app{"accel: a self-hosted accelerator platform (engine, hardware inspection, runtimes)"};
  app.require_subcommand(1);
  int exit_code = 0;
  accel::cli::add_train_command(app, exit_code);
  accel::cli::add_info_command(app, exit_code);
  accel::cli::add_smi_command(app, exit_code);
  accel::cli::add_serve_command(app, exit_code);
  accel::cli::add_admin_command(app, exit_code);
  accel::cli::add_runtime_commands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const accel::Error& e) {
    std::fprintf(stderr, "accel: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "accel: internal error: %s\n", e.what());
    return 2;
  }
  return exit_code;
}
