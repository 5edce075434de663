#include "curve_plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "accel/core/error.h"

extern char** environ;

namespace accel::cli {
namespace {

namespace fs = std::filesystem;

std::string find_gnuplot() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/gnuplot";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string extension_of(const std::string& path) { return fs::path(path).extension().string(); }

// A gnuplot string literal: single quotes, a quote doubled.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (const char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace

void check_plot_target(const std::string& path) {
  const std::string ext = extension_of(path);
  if (ext != ".png" && ext != ".svg") {
    throw ValueError("--plot " + path + ": the file must end in .png or .svg");
  }
  const fs::path folder = fs::path(path).parent_path();
  if (!folder.empty() && !fs::is_directory(folder)) {
    throw ValueError("--plot " + path + ": the folder " + folder.string() + " does not exist");
  }
  if (find_gnuplot().empty()) {
    throw Error("--plot draws with gnuplot, which is not on PATH: apt-get install gnuplot-nox");
  }
}

void plot_curves(const std::string& path, const train::History& history, const std::string& title,
                 const std::string& held_out) {
  check_plot_target(path);
  const auto column = [&](const char* name) -> const std::vector<double>* {
    const auto it = history.history.find(name);
    return it == history.history.end() ? nullptr : &it->second;
  };
  const auto *loss = column("loss"), *val_loss = column("val_loss"), *accuracy = column("accuracy"),
             *val_accuracy = column("val_accuracy");
  const std::string temporary = path + ".tmp" + extension_of(path);
  std::ostringstream script;
  script << (extension_of(path) == ".svg" ? "set terminal svg size 1000,420 dynamic font 'sans,11'\n"
                                          : "set terminal pngcairo size 1000,420 font 'sans,10'\n")
         << "set output " << quoted(temporary) << "\n"
         << "set multiplot layout 1,2 title " << quoted(title) << "\n"
         << "set grid\nset xlabel 'epoch'\nset xtics 1\n"
         << "$curves << EOD\n";
  char row[160];
  for (std::size_t i = 0; i < history.epoch.size(); ++i) {
    const auto at = [&](const std::vector<double>* values) { return values ? values->at(i) : std::nan(""); };
    std::snprintf(row, sizeof row, "%d %.9g %.9g %.9g %.9g\n", history.epoch[i] + 1, at(loss), at(val_loss),
                  at(accuracy), at(val_accuracy));
    script << row;
  }
  script << "EOD\n"
         << "set ylabel 'loss'\nset key top right\n"
         << "plot $curves using 1:2 with linespoints lw 2 title 'training'"
         << (val_loss ? ", $curves using 1:3 with linespoints lw 2 title " + quoted(held_out) : "") << "\n"
         << "set ylabel 'accuracy'\nset key bottom right\n"
         << "plot $curves using 1:4 with linespoints lw 2 title 'training'"
         << (val_accuracy ? ", $curves using 1:5 with linespoints lw 2 title " + quoted(held_out) : "") << "\n"
         << "unset multiplot\nset output\n";

  // A private folder (mode 0700) for gnuplot's script and log, so no other user can plant a
  // file or a link where they are written.
  const char* tmp = std::getenv("TMPDIR");
  std::string folder = std::string(tmp && *tmp ? tmp : "/tmp") + "/accel-plot-XXXXXX";
  if (!::mkdtemp(folder.data()))
    throw Error("--plot: cannot make a temporary folder: " + std::string(std::strerror(errno)));
  struct RemoveFolder {
    std::string path;
    ~RemoveFolder() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  } remove_folder{folder};
  const std::string script_file = folder + "/curves.gp", log_path = folder + "/gnuplot.log";
  std::string script_path = script_file;
  const int script_fd = ::open(script_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (script_fd < 0) throw Error(std::string("--plot: cannot write gnuplot's script: ") + std::strerror(errno));
  const std::string text = script.str();
  const bool written = ::write(script_fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(script_fd);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const std::string gnuplot = find_gnuplot();
  char* argv[] = {const_cast<char*>("gnuplot"), script_path.data(), nullptr};
  pid_t pid = 0;
  const int spawned = written ? ::posix_spawn(&pid, gnuplot.c_str(), &actions, nullptr, argv, environ) : EIO;
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  if (spawned == 0) {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  std::ifstream log(log_path);
  const std::string output{std::istreambuf_iterator<char>(log), std::istreambuf_iterator<char>()};
  if (spawned != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !fs::exists(temporary)) {
    fs::remove(temporary);
    throw Error("--plot " + path + ": gnuplot failed" +
                (spawned != 0 ? std::string(" to start: ") + std::strerror(spawned) : ": " + output));
  }
  fs::rename(temporary, path);
}

}  // namespace accel::cli
