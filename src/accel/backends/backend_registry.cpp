#include <omp.h>

#include <string>

#include "accel/backends/backend.h"
#include "accel/backends/cpu/cpu_backend.h"
#include "accel/core/error.h"
#ifdef ACCEL_WITH_CUDA
#include "accel/backends/cuda/cuda_device.h"  // cuda::device_count, cuda::unavailable_reason
#endif

namespace accel {

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu::backend();
#ifdef ACCEL_WITH_CUDA
  const std::string reason = cuda::unavailable_reason(device.index);
  if (!reason.empty()) throw DeviceError(reason);
  throw DeviceError("device " + device.to_string() +
                    " is present, but this build's CUDA backend has no tensor kernels yet "
                    "(the CUDA backend issue adds them); use --device cpu");
#else
  throw DeviceError("no CUDA device: this build of accel has no CUDA backend (the CUDA toolkit "
                    "was not found at configure time); use device cpu, or rebuild where nvcc is "
                    "installed");
#endif
}

namespace cpu {
CpuBackend& backend() {
  static CpuBackend instance;
  return instance;
}
}  // namespace cpu

void set_num_threads(int threads) {
  if (threads < 0) throw ValueError("set_num_threads: threads must be >= 0, got " + std::to_string(threads));
  omp_set_num_threads(threads == 0 ? omp_get_num_procs() : threads);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace accel
