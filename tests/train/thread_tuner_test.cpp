// ThreadTuner against synthetic step times: it must pick the count with the lower mean step
// time (a descheduled thread shows as a few whole-time-slice steps, not a slower median), probe
// again when conditions change, and stay at 1 where there is only one CPU.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>

#include "accel/core/error.h"
#include "accel/hw/host_info.h"
#include "accel/train/thread_tuner.h"

using accel::train::ThreadTuner;
using accel::train::ThreadTunerOptions;

namespace {

// Runs `steps` steps whose time the model gives for the tuner's current count; returns the
// count of the last step.
int drive(ThreadTuner& tuner, int steps, const std::function<double(int threads, int step)>& seconds) {
  for (int i = 0; i < steps; ++i) tuner.record(seconds(tuner.threads(), i));
  return tuner.threads();
}

}  // namespace

TEST(ThreadTuner, OnAQuietMachineEveryCoreHelps) {
  ThreadTuner tuner({.max_threads = 2});
  EXPECT_EQ(tuner.candidates(), (std::vector<int>{2, 1}));
  EXPECT_EQ(drive(tuner, 500, [](int threads, int) { return threads == 2 ? 0.0003 : 0.00055; }), 2);
  EXPECT_EQ(tuner.probes_completed(), 1);
}

TEST(ThreadTuner, BesideABusyNeighbourTheMeanNotTheMedianDecides) {
  // Two threads: three steps in four as fast as on a quiet machine, the fourth waits a 10 ms
  // time slice for the descheduled thread. The median says 2 threads; the mean (and the epoch) 1.
  ThreadTuner tuner({.max_threads = 2});
  const auto contended = [](int threads, int step) { return threads == 1 ? 0.00055 : step % 4 == 3 ? 0.010 : 0.0003; };
  EXPECT_EQ(drive(tuner, 2000, contended), 1);
}

TEST(ThreadTuner, ProbesAgainWhenTheNeighbourLeaves) {
  ThreadTuner tuner({.max_threads = 4, .reprobe_after_s = 0.5});
  EXPECT_EQ(tuner.candidates(), (std::vector<int>{4, 2, 1}));
  const auto busy = [](int threads, int) { return threads == 1 ? 0.001 : 0.004; };
  EXPECT_EQ(drive(tuner, 400, busy), 1);  // a probe of ~70 steps, then 1 thread
  const int probes = tuner.probes_completed();
  const auto quiet = [](int threads, int) { return 0.001 / threads; };
  EXPECT_EQ(drive(tuner, 3000, quiet), 4);  // 0.5 s of running, a probe, then 4 threads win
  EXPECT_GT(tuner.probes_completed(), probes);
}

TEST(ThreadTuner, OneCpuMeansOneThreadAndNoProbing) {
  ThreadTuner tuner({.max_threads = 1});
  EXPECT_EQ(tuner.candidates(), (std::vector<int>{1}));
  EXPECT_EQ(drive(tuner, 100, [](int, int) { return 0.001; }), 1);
}

TEST(ThreadTuner, RejectsNonsenseOptions) {
  EXPECT_THROW(ThreadTuner({.max_threads = 0}), accel::ValueError);
  EXPECT_THROW(ThreadTuner({.max_threads = 2, .probe_steps = 0}), accel::ValueError);
  EXPECT_THROW(ThreadTuner({.max_threads = 2, .reprobe_after_s = 0}), accel::ValueError);
}

TEST(UsableCpus, AffinityCapsAndAccelNumThreadsLowers) {
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  const int all = accel::hw::usable_cpus();
  EXPECT_GE(all, 1);
  EXPECT_LE(all, CPU_COUNT(&set));
  setenv("ACCEL_NUM_THREADS", "1", 1);
  EXPECT_EQ(accel::hw::usable_cpus(), 1);
  setenv("ACCEL_NUM_THREADS", "100000", 1);  // never above what the process may use
  EXPECT_EQ(accel::hw::usable_cpus(), all);
  setenv("ACCEL_NUM_THREADS", "two", 1);  // not a number: ignored
  EXPECT_EQ(accel::hw::usable_cpus(), all);
  unsetenv("ACCEL_NUM_THREADS");
}
