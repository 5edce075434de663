// The PJRT layer in a build without pjrt_c_api.h (scripts/pjrt-plugin.sh was not run before
// CMake): plugins can still be found, but using one says how to build accel with PJRT.
#include "accel/backends/xla/pjrt.h"

namespace accel::xla {
namespace {

[[noreturn]] void unavailable() {
  throw PjrtError(
      "this accel was built without PJRT (no pjrt_c_api.h at configure time): run scripts/pjrt-plugin.sh BUILD, "
      "then configure and build again (make build does both)");
}

}  // namespace

PjrtVersion built_api_version() { return {}; }
bool built_with_pjrt() { return false; }
std::shared_ptr<Plugin> Plugin::load(const std::string&) { unavailable(); }
Buffer::~Buffer() = default;
Buffer::Buffer(Buffer&&) noexcept = default;
Buffer& Buffer::operator=(Buffer&&) noexcept = default;
std::vector<std::int64_t> Buffer::dims() const { unavailable(); }
void Buffer::to_host(void*, std::size_t) const { unavailable(); }
float Buffer::scalar_f32() const { unavailable(); }
Executable::~Executable() = default;
std::size_t Executable::num_outputs() const { unavailable(); }
std::vector<std::vector<Buffer>> Executable::execute(const std::vector<std::vector<PJRT_Buffer*>>&) const {
  unavailable();
}
Client::Client(std::shared_ptr<const Plugin> plugin) : plugin_(std::move(plugin)) { unavailable(); }
void Client::describe_devices() { unavailable(); }
Client::~Client() = default;
std::unique_ptr<Executable> Client::compile(const std::string&, int) const { unavailable(); }
Buffer Client::upload(const void*, ElementType, const std::vector<std::int64_t>&, int) const { unavailable(); }
std::shared_ptr<Client> shared_client(const std::string& spec) {
  find_plugin(spec);  // a missing plugin is the first thing to fix
  unavailable();
}

}  // namespace accel::xla
