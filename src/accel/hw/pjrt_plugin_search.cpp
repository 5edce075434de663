// Python's packaging is how every PJRT plugin ships (xla-cpu-pjrt, libtpu, jax-cuda13-pjrt), so
// the search walks the Python package folders a user would have installed them into.
#include "accel/hw/pjrt_plugin_search.h"

#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace accel::hw {
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::vector<std::string> glob_paths(const std::string& pattern) {
  std::vector<std::string> paths;
  glob_t matches{};
  if (glob(pattern.c_str(), 0, nullptr, &matches) == 0) {
    for (std::size_t i = 0; i < matches.gl_pathc; ++i) paths.emplace_back(matches.gl_pathv[i]);
  }
  globfree(&matches);
  return paths;
}

// Python package folders, most specific first.
std::vector<std::string> package_folders() {
  std::vector<std::string> folders;
  const auto add_glob = [&](const std::string& pattern) {
    for (auto& path : glob_paths(pattern)) folders.push_back(std::move(path));
  };
  std::string search = env("ACCEL_PJRT_SEARCH_PATH");
  for (std::size_t start = 0; start <= search.size() && !search.empty();) {
    const std::size_t end = std::min(search.find(':', start), search.size());
    if (end > start) folders.push_back(search.substr(start, end - start));
    start = end + 1;
  }
  if (!env("VIRTUAL_ENV").empty()) add_glob(env("VIRTUAL_ENV") + "/lib/python3*/site-packages");
#ifdef ACCEL_PJRT_BUILD_VENV
  add_glob(std::string(ACCEL_PJRT_BUILD_VENV) + "/lib/python3*/site-packages");
#endif
  if (!env("HOME").empty()) add_glob(env("HOME") + "/.local/lib/python3*/site-packages");
  add_glob("/usr/local/lib/python3*/dist-packages");
  add_glob("/usr/local/lib/python3*/site-packages");
  folders.emplace_back("/usr/lib/python3/dist-packages");
  return folders;
}

// Paths inside a package folder where each named plugin is installed.
std::vector<std::string> package_relative_paths(const std::string& name) {
  if (name == "cpu") return {"xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so"};
  if (name == "tpu") return {"libtpu/libtpu.so"};
  if (name == "cuda") return {"jax_plugins/xla_cuda13/xla_cuda_plugin.so", "jax_plugins/xla_cuda12/xla_cuda_plugin.so"};
  return {};
}

bool readable_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec) && access(path.c_str(), R_OK) == 0;
}

}  // namespace

std::string PjrtPluginLocation::unsafe_for_tenants() const {
  struct stat file {};
  if (::stat(path.c_str(), &file) != 0) return path + " cannot be read";
  if (!(file.st_mode & S_IROTH)) return path + " is not readable by other users (chmod o+r)";
  if (file.st_mode & S_IWOTH) return path + " is writable by other users: a tenant could replace it";
  for (std::filesystem::path dir = std::filesystem::path(path).parent_path(); !dir.empty(); dir = dir.parent_path()) {
    struct stat folder {};
    if (::stat(dir.c_str(), &folder) != 0) return dir.string() + " cannot be read";
    if (!(folder.st_mode & S_IXOTH)) return dir.string() + " cannot be passed by other users (chmod o+x)";
    if ((folder.st_mode & S_IWOTH) && !(folder.st_mode & S_ISVTX)) {
      return dir.string() + " is writable by other users: a tenant could replace the plugin";
    }
    if (dir == dir.root_path()) break;
  }
  return "";
}

bool PjrtPluginLocation::is_libtpu() const {
  return std::filesystem::path(path).filename().string().starts_with("libtpu");
}

PjrtPluginLocation find_pjrt_plugin(const std::string& requested) {
  std::string spec = requested;
  std::string found_by = "named " + spec;
  if (spec.empty()) {
    spec = env("ACCEL_PJRT_PLUGIN");
    found_by = "ACCEL_PJRT_PLUGIN=" + spec;
  }
  if (spec.empty()) {
    // A TPU VM's libtpu comes first; everywhere else the CPU plugin.
    try {
      return find_pjrt_plugin("tpu");
    } catch (const PjrtPluginError&) {
      spec = "cpu";
      found_by = "default (no libtpu found)";
    }
  }
  if (spec == "none") throw PjrtPluginError("PJRT is turned off (" + found_by + ")");
  if (spec.find('/') != std::string::npos || spec.ends_with(".so")) {
    if (!readable_file(spec)) {
      throw PjrtPluginError("no PJRT plugin at " + spec + " (" + found_by +
                            "): give the path of a plugin's .so, or a name: cpu, tpu, cuda");
    }
    // Absolute: dlopen searches the library path for a name without '/', and a job resolves a
    // relative path against its own folder.
    std::error_code ec;
    const std::filesystem::path absolute = std::filesystem::weakly_canonical(std::filesystem::absolute(spec), ec);
    return {ec ? spec : absolute.string(), found_by};
  }
  const std::vector<std::string> relative = package_relative_paths(spec);
  if (relative.empty()) {
    throw PjrtPluginError("unknown PJRT plugin '" + spec + "' (" + found_by +
                          "): expected cpu, tpu, cuda or a path to a .so");
  }
  std::vector<std::string> tried;
  if (spec == "tpu") {
    for (const std::string& path : {env("TPU_LIBRARY_PATH"), std::string("/lib/libtpu.so"),
                                    std::string("/usr/lib/libtpu.so"), std::string("/usr/local/lib/libtpu.so")}) {
      if (path.empty()) continue;
      if (readable_file(path)) return {path, found_by + ": " + path};
      tried.push_back(path);
    }
  }
  for (const std::string& folder : package_folders()) {
    for (const std::string& rel : relative) {
      const std::string path = folder + "/" + rel;
      if (readable_file(path)) return {path, found_by + ": Python package in " + folder};
      tried.push_back(path);
    }
  }
  std::string install = spec == "cpu"   ? "pip install xla-cpu-pjrt (scripts/pjrt-plugin.sh does, into build/pjrt-venv)"
                        : spec == "tpu" ? "pip install libtpu, or set TPU_LIBRARY_PATH"
                                        : "pip install jax-cuda13-pjrt";
  std::string list;
  for (const auto& path : tried) list += "\n  " + path;
  throw PjrtPluginError("no '" + spec + "' PJRT plugin found (" + found_by + "); " + install +
                        ", or set ACCEL_PJRT_PLUGIN to the plugin's path. Looked in:" + list);
}

}  // namespace accel::hw
