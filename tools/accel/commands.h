// The subcommands of `accel`. Each adds itself to the app and runs from its CLI11 callback,
// leaving the process exit status in `exit_code`; errors propagate as accel::Error.
#pragma once

#include <CLI/CLI.hpp>

namespace accel::cli {

void add_train_command(CLI::App& app, int& exit_code);
void add_info_command(CLI::App& app, int& exit_code);
void add_smi_command(CLI::App& app, int& exit_code);
void add_serve_command(CLI::App& app, int& exit_code);
void add_admin_command(CLI::App& app, int& exit_code);
void add_runtime_commands(CLI::App& app, int& exit_code);

}  // namespace accel::cli
