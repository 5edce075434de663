// Random numbers drawn on the device: dropout's mask from Philox (core/philox.h).
#include "accel/backends/cpu/cpu_backend.h"
#include "accel/core/parallel.h"
#include "accel/core/philox.h"
#include "accel/core/scalar_types.h"

#include <type_traits>

namespace accel::cpu {

void CpuBackend::dropout_mask(const TensorDesc& dst, double p, std::uint64_t seed, std::uint64_t* offset,
                              const Stream&) {
  const std::int64_t n = dst.numel();
  const std::int64_t blocks = (n + 3) / 4;
  const std::uint64_t base = *offset;
  const auto keep = static_cast<float>(1.0 - p);
  dispatch_floating(dst.dtype, "dropout", [&]<typename T>() {
    // The scale in the mask's dtype, rounded once (from double for float64, float otherwise).
    const double exact = 1.0 / (1.0 - p);
    T scale, zero;
    if constexpr (std::is_same_v<T, double>) {
      scale = exact;
      zero = 0.0;
    } else {
      scale = T(static_cast<float>(exact));
      zero = T(0.0f);
    }
    T* out = dst.ptr<T>();
    parallel_for(blocks, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t b = begin; b < end; ++b) {
        const std::array<std::uint32_t, 4> draw = philox4x32(seed, base + static_cast<std::uint64_t>(b));
        for (std::int64_t lane = 0; lane < 4 && b * 4 + lane < n; ++lane)
          out[b * 4 + lane] = philox_uniform(draw[static_cast<std::size_t>(lane)]) < keep ? scale : zero;
      }
    });
  });
  *offset = base + static_cast<std::uint64_t>(blocks);
}

}  // namespace accel::cpu
