// parallel_for: splits [0, n) into one contiguous chunk per OpenMP thread, or runs it inline
// below kParallelThreshold. Kernels keep their inner loops plain (restrict pointers, no
// branches) so the compiler vectorises them the same way on both paths.
#pragma once

#include <omp.h>

#include <cstdint>

namespace accel {

// Below this many elements a loop runs on one thread: waking the other costs more.
inline constexpr std::int64_t kParallelThreshold = 1 << 15;

template <typename Body>
void parallel_for(std::int64_t n, std::int64_t threshold, const Body& body) {
  if (n < threshold || omp_get_max_threads() == 1 || omp_in_parallel()) {
    body(std::int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const std::int64_t threads = omp_get_num_threads();
    const std::int64_t t = omp_get_thread_num();
    body(n * t / threads, n * (t + 1) / threads);
  }
}

template <typename Body>
void parallel_for(std::int64_t n, const Body& body) {
  parallel_for(n, kParallelThreshold, body);
}

}  // namespace accel
