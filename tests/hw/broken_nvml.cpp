// A test-only library that is not NVML: it lacks nvmlInit, so accel must call it unusable.
extern "C" int nvmlShutdown() { return 0; }
