// PJRT: the C API through which XLA's plugins (OpenXLA's CPU plugin, libtpu on TPUs, JAX's CUDA
// plugin) compile StableHLO programs and run them on their devices. This is accel's thin C++
// layer over it: a plugin loaded once per process (dlopen + GetPjrtApi + the version handshake +
// PJRT_Plugin_Initialize), a client with its devices, device buffers, compiled executables.
// Every PJRT error becomes a PjrtError with the call and the plugin's message; ownership is RAII.
//
// pjrt_c_api.h is only included by the .cpp files: it comes from PyPI's xla-cpu-pjrt at build
// time (scripts/pjrt-plugin.sh); a build without it compiles pjrt_unavailable.cpp, whose
// functions throw PjrtError saying so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "accel/core/error.h"
#include "accel/hw/pjrt_plugin_search.h"

struct PJRT_Api;
struct PJRT_Client;
struct PJRT_Device;
struct PJRT_Buffer;
struct PJRT_LoadedExecutable;

namespace accel::xla {

// A failed PJRT call ("PJRT_Client_Compile: INVALID_ARGUMENT: ...") or a plugin that cannot be
// used (missing, not a PJRT plugin, too old): the path and the versions are in the message.
class PjrtError : public Error {
 public:
  using Error::Error;
};

// The PJRT C API version accel is built against (pjrt_c_api.h), and the oldest minor it accepts.
struct PjrtVersion {
  int major = 0;
  int minor = 0;
  std::string to_string() const { return std::to_string(major) + "." + std::to_string(minor); }
};
PjrtVersion built_api_version();  // {0, 0} in a build without pjrt_c_api.h
bool built_with_pjrt();

// hw::find_pjrt_plugin (its rules and names), its error a PjrtError.
using PluginLocation = hw::PjrtPluginLocation;
PluginLocation find_plugin(const std::string& spec = "");

class Plugin {
 public:
  // Loads (once per path per process) and initialises the plugin; throws PjrtError when the file
  // is missing, is not a PJRT plugin (no GetPjrtApi), or speaks another major version or an
  // older minor than accel needs (both versions named).
  static std::shared_ptr<Plugin> load(const std::string& path);

  const std::string& path() const { return path_; }
  PjrtVersion api_version() const { return version_; }
  // The plugin's attributes: xla_version, stablehlo_current_version, ...
  const std::map<std::string, std::string>& attributes() const { return attributes_; }
  const PJRT_Api* api() const { return api_; }

 private:
  Plugin() = default;
  std::string path_;
  PjrtVersion version_;
  std::map<std::string, std::string> attributes_;
  const PJRT_Api* api_ = nullptr;
};

class Client;

// A device array: f32 or s32, dense, row-major. Destroyed with its owner.
class Buffer {
 public:
  Buffer() = default;
  // `owner`: what must outlive the buffer (its client).
  Buffer(std::shared_ptr<const Plugin> plugin, PJRT_Buffer* buffer, std::shared_ptr<const void> owner)
      : plugin_(std::move(plugin)), owner_(std::move(owner)), buffer_(buffer) {}
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  PJRT_Buffer* get() const { return buffer_; }
  explicit operator bool() const { return buffer_ != nullptr; }
  std::vector<std::int64_t> dims() const;
  // Copies the whole buffer into `dst` (`bytes` must be its size) and waits for the copy.
  void to_host(void* dst, std::size_t bytes) const;
  float scalar_f32() const;

 private:
  std::shared_ptr<const Plugin> plugin_;
  std::shared_ptr<const void> owner_;
  PJRT_Buffer* buffer_ = nullptr;
};

// A compiled program. execute() takes one argument list per device it was compiled for
// (num_replicas of them) and returns one output list per device.
class Executable {
 public:
  Executable(std::shared_ptr<const Plugin> plugin, PJRT_LoadedExecutable* executable, int replicas,
             std::shared_ptr<const void> owner)
      : plugin_(std::move(plugin)), owner_(std::move(owner)), executable_(executable), replicas_(replicas) {}
  ~Executable();
  Executable(const Executable&) = delete;
  Executable& operator=(const Executable&) = delete;

  int replicas() const { return replicas_; }
  std::size_t num_outputs() const;
  // Arguments a program donates (tf.aliasing_output) are consumed: their Buffer objects must not
  // be used afterwards (the caller replaces them with the outputs). Waits for completion.
  std::vector<std::vector<Buffer>> execute(const std::vector<std::vector<PJRT_Buffer*>>& arguments) const;

 private:
  std::shared_ptr<const Plugin> plugin_;
  std::shared_ptr<const void> owner_;  // the client, which must outlive its executables and buffers
  PJRT_LoadedExecutable* executable_ = nullptr;
  int replicas_ = 1;
  mutable std::optional<std::size_t> num_outputs_;  // an executable runs on one thread at a time
};

enum class ElementType { F32, S32 };

struct DeviceInfo {
  int id = 0;
  std::string kind;  // "cpu", "TPU v4", ...
  std::string description;
};

// Made with std::make_shared (shared_client does): its buffers and executables keep it alive.
class Client : public std::enable_shared_from_this<Client> {
 public:
  explicit Client(std::shared_ptr<const Plugin> plugin);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const Plugin& plugin() const { return *plugin_; }
  const std::string& platform_name() const { return platform_name_; }  // "cpu", "tpu", "cuda"
  const std::string& platform_version() const { return platform_version_; }
  const std::vector<DeviceInfo>& devices() const { return device_info_; }  // the addressable ones
  int device_count() const { return static_cast<int>(devices_.size()); }

  // `mlir`: a StableHLO module as text. Compiled for `replicas` devices (one partition each).
  std::unique_ptr<Executable> compile(const std::string& mlir, int replicas = 1) const;
  // A copy of host data on device `device` (an index into devices()); waits until the host
  // memory may be reused.
  Buffer upload(const void* data, ElementType type, const std::vector<std::int64_t>& dims, int device = 0) const;

 private:
  void describe_devices();

  std::shared_ptr<const Plugin> plugin_;
  PJRT_Client* client_ = nullptr;
  std::string platform_name_;
  std::string platform_version_;
  std::vector<PJRT_Device*> devices_;
  std::vector<DeviceInfo> device_info_;
};

// The client of the plugin `spec` names (find_plugin), created once per process and shared: a
// PJRT client owns its devices' thread pools and memory, and plugins such as libtpu allow one.
std::shared_ptr<Client> shared_client(const std::string& spec = "");

}  // namespace accel::xla
