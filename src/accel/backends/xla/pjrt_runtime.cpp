// The PJRT C API calls behind pjrt.h (plugins, clients, buffers, executables). Every call's
// PJRT_Error becomes a PjrtError naming the call; every out-object has one owner.
#include <dlfcn.h>

#include <cstring>
#include <mutex>

#include "accel/backends/xla/pjrt.h"

// From PyPI xla-cpu-pjrt, found by CMake (scripts/pjrt-plugin.sh installs it).
#include <pjrt_c_api.h>

namespace accel::xla {
namespace {

// Zeroed PJRT argument struct of type T with its struct_size: what the caller knows of it.
#define ACCEL_PJRT_ARGS(T, var) \
  T var{};                      \
  var.struct_size = T##_STRUCT_SIZE

// The oldest PJRT C API minor version accel accepts: every function and field it uses exists
// from here (PJRT_Client_Create's kv_try_get callback and Execute's call_location are the newest;
// older plugins reject the larger structs).
constexpr int kMinimumMinor = 70;

std::string error_message(const PJRT_Api* api, PJRT_Error* error) {
  ACCEL_PJRT_ARGS(PJRT_Error_Message_Args, message);
  message.error = error;
  api->PJRT_Error_Message(&message);
  std::string text(message.message, message.message_size);
  ACCEL_PJRT_ARGS(PJRT_Error_GetCode_Args, code);
  code.error = error;
  static const char* const kCodes[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  if (PJRT_Error* failed = api->PJRT_Error_GetCode(&code); failed != nullptr) {
    ACCEL_PJRT_ARGS(PJRT_Error_Destroy_Args, destroy_failed);
    destroy_failed.error = failed;
    api->PJRT_Error_Destroy(&destroy_failed);
  } else if (code.code >= 0 && code.code <= 16) {
    text = std::string(kCodes[code.code]) + ": " + text;
  }
  ACCEL_PJRT_ARGS(PJRT_Error_Destroy_Args, destroy);
  destroy.error = error;
  api->PJRT_Error_Destroy(&destroy);
  return text;
}

void check(const PJRT_Api* api, PJRT_Error* error, const char* call) {
  if (error != nullptr) throw PjrtError(std::string(call) + ": " + error_message(api, error));
}

// Waits for and destroys `event`; its error, if any, is thrown.
void await_event(const PJRT_Api* api, PJRT_Event* event, const char* what) {
  if (event == nullptr) return;
  ACCEL_PJRT_ARGS(PJRT_Event_Await_Args, await_args);
  await_args.event = event;
  PJRT_Error* error = api->PJRT_Event_Await(&await_args);
  ACCEL_PJRT_ARGS(PJRT_Event_Destroy_Args, destroy);
  destroy.event = event;
  if (PJRT_Error* failed = api->PJRT_Event_Destroy(&destroy); failed != nullptr) error_message(api, failed);
  check(api, error, what);
}

std::string named_value_text(const PJRT_NamedValue& value) {
  switch (value.type) {
    case PJRT_NamedValue_kString:
      return std::string(value.string_value, value.value_size);
    case PJRT_NamedValue_kInt64:
      return std::to_string(value.int64_value);
    case PJRT_NamedValue_kInt64List: {
      std::string text;
      for (std::size_t i = 0; i < value.value_size; ++i) {
        if (i > 0) text.push_back('.');  // a version: "1.13.3"
        text.append(std::to_string(value.int64_array_value[i]));
      }
      return text;
    }
    case PJRT_NamedValue_kFloat:
      return std::to_string(value.float_value);
    case PJRT_NamedValue_kBool:
      return value.bool_value ? "true" : "false";
  }
  return "?";
}

// CompileOptionsProto with executable_build_options {num_replicas, num_partitions = 1}:
// field 3 (a message) holding fields 4 and 5 (varints). The plugin picks its default device
// assignment (replica i on device i).
std::string compile_options_proto(int replicas) {
  const auto append_varint = [](std::string& bytes, std::uint64_t value) {
    do {
      const auto byte = static_cast<std::uint8_t>(value & 0x7f);
      value >>= 7;
      bytes.push_back(static_cast<char>(value ? byte | 0x80 : byte));
    } while (value);
  };
  std::string build_options;
  build_options.push_back('\x20');  // field 4, varint: num_replicas
  append_varint(build_options, static_cast<std::uint64_t>(replicas));
  build_options.push_back('\x28');  // field 5, varint: num_partitions
  append_varint(build_options, 1);
  std::string options;
  options.push_back('\x1a');  // field 3, a message: executable_build_options
  append_varint(options, build_options.size());
  options.append(build_options);
  return options;
}

}  // namespace

PjrtVersion built_api_version() { return {PJRT_API_MAJOR, PJRT_API_MINOR}; }
bool built_with_pjrt() { return true; }

std::shared_ptr<Plugin> Plugin::load(const std::string& path) {
  static std::mutex mutex;
  // Never destroyed, like the libraries: a plugin's own statics may be gone at exit.
  static auto& loaded = *new std::map<std::string, std::shared_ptr<Plugin>>();
  std::lock_guard lock(mutex);
  if (auto it = loaded.find(path); it != loaded.end()) return it->second;

  // Never unloaded: plugins keep threads and static state for the process's lifetime.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    throw PjrtError("cannot load the PJRT plugin " + path + ": " + (why ? why : "dlopen failed"));
  }
  using GetPjrtApiFn = const PJRT_Api* (*)();
  auto get_api = reinterpret_cast<GetPjrtApiFn>(dlsym(handle, "GetPjrtApi"));
  if (get_api == nullptr) {
    throw PjrtError(path +
                    " is not a PJRT plugin: it exports no GetPjrtApi (PJRT plugins are e.g. PyPI's "
                    "xla-cpu-pjrt, libtpu, jax-cuda13-pjrt)");
  }
  const PJRT_Api* api = get_api();
  if (api == nullptr) throw PjrtError(path + ": GetPjrtApi returned no API");
  auto plugin = std::shared_ptr<Plugin>(new Plugin());
  plugin->path_ = path;
  plugin->version_ = {api->pjrt_api_version.major_version, api->pjrt_api_version.minor_version};
  if (plugin->version_.major != PJRT_API_MAJOR || plugin->version_.minor < kMinimumMinor) {
    throw PjrtError("the PJRT plugin " + path + " speaks PJRT C API " + plugin->version_.to_string() +
                    "; accel needs " + std::to_string(PJRT_API_MAJOR) + "." + std::to_string(kMinimumMinor) +
                    " or newer (it was built " + "with " + built_api_version().to_string() +
                    "): install a newer plugin");
  }
  plugin->api_ = api;
  ACCEL_PJRT_ARGS(PJRT_Plugin_Initialize_Args, init);
  check(api, api->PJRT_Plugin_Initialize(&init), "PJRT_Plugin_Initialize");
  ACCEL_PJRT_ARGS(PJRT_Plugin_Attributes_Args, attributes);
  if (api->PJRT_Plugin_Attributes(&attributes) == nullptr) {
    for (std::size_t i = 0; i < attributes.num_attributes; ++i) {
      const PJRT_NamedValue& value = attributes.attributes[i];
      plugin->attributes_[std::string(value.name, value.name_size)] = named_value_text(value);
    }
  }
  loaded[path] = plugin;
  return plugin;
}

// ---- Buffer ----

Buffer::~Buffer() {
  if (buffer_ == nullptr) return;
  ACCEL_PJRT_ARGS(PJRT_Buffer_Destroy_Args, destroy);
  destroy.buffer = buffer_;
  PJRT_Error* error = plugin_->api()->PJRT_Buffer_Destroy(&destroy);
  if (error != nullptr) error_message(plugin_->api(), error);  // frees it; a destructor cannot throw
}

Buffer::Buffer(Buffer&& other) noexcept
    : plugin_(std::move(other.plugin_)), owner_(std::move(other.owner_)), buffer_(other.buffer_) {
  other.buffer_ = nullptr;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Buffer dropped(std::move(*this));
    plugin_ = std::move(other.plugin_);
    owner_ = std::move(other.owner_);
    buffer_ = other.buffer_;
    other.buffer_ = nullptr;
  }
  return *this;
}

std::vector<std::int64_t> Buffer::dims() const {
  ACCEL_PJRT_ARGS(PJRT_Buffer_Dimensions_Args, args);
  args.buffer = buffer_;
  check(plugin_->api(), plugin_->api()->PJRT_Buffer_Dimensions(&args), "PJRT_Buffer_Dimensions");
  return {args.dims, args.dims + args.num_dims};
}

void Buffer::to_host(void* dst, std::size_t bytes) const {
  const PJRT_Api* api = plugin_->api();
  ACCEL_PJRT_ARGS(PJRT_Buffer_ToHostBuffer_Args, size_query);
  size_query.src = buffer_;
  check(api, api->PJRT_Buffer_ToHostBuffer(&size_query), "PJRT_Buffer_ToHostBuffer");
  if (size_query.dst_size != bytes) {
    throw PjrtError("PJRT buffer is " + std::to_string(size_query.dst_size) + " bytes; the host copy expected " +
                    std::to_string(bytes));
  }
  ACCEL_PJRT_ARGS(PJRT_Buffer_ToHostBuffer_Args, copy);
  copy.src = buffer_;
  copy.dst = dst;
  copy.dst_size = bytes;
  check(api, api->PJRT_Buffer_ToHostBuffer(&copy), "PJRT_Buffer_ToHostBuffer");
  await_event(api, copy.event, "PJRT_Buffer_ToHostBuffer (waiting for the copy)");
}

float Buffer::scalar_f32() const {
  float value = 0;
  to_host(&value, sizeof value);
  return value;
}

// ---- Executable ----

Executable::~Executable() {
  ACCEL_PJRT_ARGS(PJRT_LoadedExecutable_Destroy_Args, destroy);
  destroy.executable = executable_;
  PJRT_Error* error = plugin_->api()->PJRT_LoadedExecutable_Destroy(&destroy);
  if (error != nullptr) error_message(plugin_->api(), error);
}

std::size_t Executable::num_outputs() const {
  if (num_outputs_) return *num_outputs_;  // asked once: execute needs it on every step
  const PJRT_Api* api = plugin_->api();
  ACCEL_PJRT_ARGS(PJRT_LoadedExecutable_GetExecutable_Args, get);
  get.loaded_executable = executable_;
  check(api, api->PJRT_LoadedExecutable_GetExecutable(&get), "PJRT_LoadedExecutable_GetExecutable");
  ACCEL_PJRT_ARGS(PJRT_Executable_NumOutputs_Args, outputs);
  outputs.executable = get.executable;
  PJRT_Error* error = api->PJRT_Executable_NumOutputs(&outputs);
  ACCEL_PJRT_ARGS(PJRT_Executable_Destroy_Args, destroy);
  destroy.executable = get.executable;
  check(api, api->PJRT_Executable_Destroy(&destroy), "PJRT_Executable_Destroy");
  check(api, error, "PJRT_Executable_NumOutputs");
  num_outputs_ = outputs.num_outputs;
  return outputs.num_outputs;
}

std::vector<std::vector<Buffer>> Executable::execute(const std::vector<std::vector<PJRT_Buffer*>>& arguments) const {
  const PJRT_Api* api = plugin_->api();
  if (arguments.size() != static_cast<std::size_t>(replicas_)) {
    throw PjrtError("PJRT execute: the program was compiled for " + std::to_string(replicas_) + " device(s), given " +
                    std::to_string(arguments.size()) + " argument list(s)");
  }
  const std::size_t outputs = num_outputs();
  const std::size_t devices = arguments.size();
  std::vector<PJRT_Buffer* const*> argument_lists(devices);
  for (std::size_t d = 0; d < devices; ++d) argument_lists[d] = arguments[d].data();
  std::vector<std::vector<PJRT_Buffer*>> raw_outputs(devices, std::vector<PJRT_Buffer*>(outputs, nullptr));
  std::vector<PJRT_Buffer**> output_lists(devices);
  for (std::size_t d = 0; d < devices; ++d) output_lists[d] = raw_outputs[d].data();
  std::vector<PJRT_Event*> done(devices, nullptr);

  ACCEL_PJRT_ARGS(PJRT_ExecuteOptions, options);
  ACCEL_PJRT_ARGS(PJRT_LoadedExecutable_Execute_Args, args);
  args.executable = executable_;
  args.options = &options;
  args.argument_lists = argument_lists.data();
  args.num_devices = devices;
  args.num_args = arguments.empty() ? 0 : arguments[0].size();
  args.output_lists = output_lists.data();
  args.device_complete_events = done.data();
  check(api, api->PJRT_LoadedExecutable_Execute(&args), "PJRT_LoadedExecutable_Execute");

  std::vector<std::vector<Buffer>> results(devices);
  for (std::size_t d = 0; d < devices; ++d) {
    for (PJRT_Buffer* buffer : raw_outputs[d]) results[d].emplace_back(plugin_, buffer, owner_);
  }
  std::string first_error;
  for (PJRT_Event* event : done) {
    try {
      await_event(api, event, "PJRT_LoadedExecutable_Execute (running)");
    } catch (const PjrtError& error) {
      if (first_error.empty()) first_error = error.what();
    }
  }
  if (!first_error.empty()) throw PjrtError(first_error);
  return results;
}

// ---- Client ----

Client::Client(std::shared_ptr<const Plugin> plugin) : plugin_(std::move(plugin)) {
  const PJRT_Api* api = plugin_->api();
  ACCEL_PJRT_ARGS(PJRT_Client_Create_Args, create);
  check(api, api->PJRT_Client_Create(&create), "PJRT_Client_Create");
  client_ = create.client;
  try {
    describe_devices();
  } catch (...) {
    ACCEL_PJRT_ARGS(PJRT_Client_Destroy_Args, destroy);
    destroy.client = client_;
    if (PJRT_Error* failed = api->PJRT_Client_Destroy(&destroy); failed != nullptr) error_message(api, failed);
    throw;
  }
}

void Client::describe_devices() {
  const PJRT_Api* api = plugin_->api();

  ACCEL_PJRT_ARGS(PJRT_Client_PlatformName_Args, name);
  name.client = client_;
  check(api, api->PJRT_Client_PlatformName(&name), "PJRT_Client_PlatformName");
  platform_name_.assign(name.platform_name, name.platform_name_size);
  ACCEL_PJRT_ARGS(PJRT_Client_PlatformVersion_Args, version);
  version.client = client_;
  check(api, api->PJRT_Client_PlatformVersion(&version), "PJRT_Client_PlatformVersion");
  platform_version_.assign(version.platform_version, version.platform_version_size);

  ACCEL_PJRT_ARGS(PJRT_Client_AddressableDevices_Args, devices);
  devices.client = client_;
  check(api, api->PJRT_Client_AddressableDevices(&devices), "PJRT_Client_AddressableDevices");
  for (std::size_t i = 0; i < devices.num_addressable_devices; ++i) {
    PJRT_Device* device = devices.addressable_devices[i];
    devices_.push_back(device);
    ACCEL_PJRT_ARGS(PJRT_Device_GetDescription_Args, get);
    get.device = device;
    check(api, api->PJRT_Device_GetDescription(&get), "PJRT_Device_GetDescription");
    DeviceInfo info;
    ACCEL_PJRT_ARGS(PJRT_DeviceDescription_Id_Args, id);
    id.device_description = get.device_description;
    check(api, api->PJRT_DeviceDescription_Id(&id), "PJRT_DeviceDescription_Id");
    info.id = id.id;
    ACCEL_PJRT_ARGS(PJRT_DeviceDescription_Kind_Args, kind);
    kind.device_description = get.device_description;
    check(api, api->PJRT_DeviceDescription_Kind(&kind), "PJRT_DeviceDescription_Kind");
    info.kind.assign(kind.device_kind, kind.device_kind_size);
    ACCEL_PJRT_ARGS(PJRT_DeviceDescription_DebugString_Args, debug);
    debug.device_description = get.device_description;
    check(api, api->PJRT_DeviceDescription_DebugString(&debug), "PJRT_DeviceDescription_DebugString");
    info.description.assign(debug.debug_string, debug.debug_string_size);
    device_info_.push_back(std::move(info));
  }
}

Client::~Client() {
  ACCEL_PJRT_ARGS(PJRT_Client_Destroy_Args, destroy);
  destroy.client = client_;
  PJRT_Error* error = plugin_->api()->PJRT_Client_Destroy(&destroy);
  if (error != nullptr) error_message(plugin_->api(), error);
}

std::unique_ptr<Executable> Client::compile(const std::string& mlir, int replicas) const {
  if (replicas < 1 || replicas > device_count()) {
    throw PjrtError("PJRT compile: " + std::to_string(replicas) + " replica(s) asked for, the " + platform_name_ +
                    " plugin has " + std::to_string(device_count()) + " device(s)");
  }
  const PJRT_Api* api = plugin_->api();
  std::string code = mlir;
  static const char kFormat[] = "mlir";
  ACCEL_PJRT_ARGS(PJRT_Program, program);
  program.code = code.data();
  program.code_size = code.size();
  program.format = kFormat;
  program.format_size = sizeof kFormat - 1;
  const std::string options = compile_options_proto(replicas);
  ACCEL_PJRT_ARGS(PJRT_Client_Compile_Args, compile);
  compile.client = client_;
  compile.program = &program;
  compile.compile_options = options.data();
  compile.compile_options_size = options.size();
  check(api, api->PJRT_Client_Compile(&compile), "PJRT_Client_Compile");
  return std::make_unique<Executable>(plugin_, compile.executable, replicas, shared_from_this());
}

Buffer Client::upload(const void* data, ElementType type, const std::vector<std::int64_t>& dims, int device) const {
  if (device < 0 || device >= device_count()) {
    throw PjrtError("PJRT upload: no device " + std::to_string(device) + " (the " + platform_name_ + " plugin has " +
                    std::to_string(device_count()) + ")");
  }
  const PJRT_Api* api = plugin_->api();
  ACCEL_PJRT_ARGS(PJRT_Client_BufferFromHostBuffer_Args, args);
  args.client = client_;
  args.data = data;
  args.type = type == ElementType::F32 ? PJRT_Buffer_Type_F32 : PJRT_Buffer_Type_S32;
  args.dims = dims.data();
  args.num_dims = dims.size();
  args.host_buffer_semantics = PJRT_HostBufferSemantics_kImmutableOnlyDuringCall;
  args.device = devices_[static_cast<std::size_t>(device)];
  check(api, api->PJRT_Client_BufferFromHostBuffer(&args), "PJRT_Client_BufferFromHostBuffer");
  Buffer buffer(plugin_, args.buffer, shared_from_this());
  await_event(api, args.done_with_host_buffer, "PJRT_Client_BufferFromHostBuffer (waiting for the copy)");
  return buffer;
}

std::shared_ptr<Client> shared_client(const std::string& spec) {
  static std::mutex mutex;
  // Never destroyed: a client's thread pools belong to the plugin, whose statics may be gone at exit.
  static auto& clients = *new std::map<std::string, std::shared_ptr<Client>>();
  const PluginLocation location = find_plugin(spec);
  std::lock_guard lock(mutex);
  auto& client = clients[location.path];
  if (!client) client = std::make_shared<Client>(Plugin::load(location.path));
  return client;
}

}  // namespace accel::xla
