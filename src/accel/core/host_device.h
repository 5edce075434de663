// ACCEL_HD marks a function that nvcc compiles for both the host and the GPU: kernels call the
// very code the CPU tests run (backends/cuda/device_math.h, core/pixels.h).
#pragma once

#if defined(__CUDACC__)
#define ACCEL_HD __host__ __device__
#else
#define ACCEL_HD
#endif
