// xla::find_plugin: hw's search, its error as the PJRT layer's own (what every caller here catches).
#include "accel/backends/xla/pjrt.h"

namespace accel::xla {

PluginLocation find_plugin(const std::string& spec) {
  try {
    return hw::find_pjrt_plugin(spec);
  } catch (const hw::PjrtPluginError& e) {
    throw PjrtError(e.what());
  }
}

}  // namespace accel::xla
