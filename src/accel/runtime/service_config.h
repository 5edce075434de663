// The runtime service's configuration: tiers (the seed's usage limits), the accelerators to
// offer (discovered GPUs and declared simulated ones), and the scheduler's timing. Loaded from
// a JSON file (docs/runtime.md); every field has a default mirroring the seed's tables.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace accel::runtime {

// Limits on each job's processes (setrlimit/setpriority in the job monitor, before the command
// starts). 0 means none. Per process: RuntimeLimits bound a runtime's processes together.
struct JobLimits {
  double ram_gb = 0;        // RLIMIT_AS; not applied on a real GPU, where CUDA reserves address space far beyond RAM
  int open_files = 0;       // RLIMIT_NOFILE
  double file_size_gb = 0;  // RLIMIT_FSIZE: the largest file a job may write
  int nice = 0;             // CPU priority under load: 0 (normal) to 19 (lowest)
};

// Limits on all of a runtime's processes together, enforced by the runtime's cgroup (docs/security.md).
// Where the service can make no cgroup, max_processes becomes RLIMIT_NPROC (which counts every
// process of the tenant's uid, all their runtimes together) and memory and CPU are bounded per
// process only (JobLimits). 0 means none.
struct RuntimeLimits {
  double memory_gb = 0;   // resident memory and page cache; the kernel's OOM killer ends a job beyond it
  int max_processes = 0;  // processes and threads: a fork bomb stops here
  double cpus = 0;        // CPU time per wall-clock second (2 = two cores' worth)
};

struct TierPolicy {
  std::string name;
  std::vector<std::string> accelerator_types;  // catalog types ("t4", "a100", "v2-8") and "cpu"
  int max_runtimes = 1;                        // concurrent runtimes of one user, any kind
  int max_accelerated = 1;                     // of which GPU/TPU runtimes
  double max_lifetime_s = 12 * 3600;
  double idle_timeout_s = 90 * 60;
  int priority = 0;  // higher wins the queue and may preempt lower
  bool preemptible = true;
  bool background_execution = false;  // jobs keep a runtime alive without client heartbeats
  double memory_fraction = 1.0;       // ACCEL_MEMORY_FRACTION given to the runtime's jobs
  JobLimits limits;
  RuntimeLimits runtime_limits;
};

struct SimulatedDevices {
  std::string type;  // catalog type: "t4", "a100", "v2-8", ...
  int count = 1;
};

// TPU runtimes served through a PJRT plugin (docs/xla.md): libtpu on a TPU VM, where `plugin` is
// "tpu"; any other plugin (the CPU plugin, for tests and rehearsals) stands in for the TPU type
// and is marked simulated, as the simulated devices are.
struct XlaDevices {
  std::string type;            // a TPU type of the catalog: "v2-8", "v3-8", "v5e"
  std::string plugin = "tpu";  // hw::find_pjrt_plugin's spec: a name or a path
  int count = 1;
};

// Runtimes as jobs of a Slurm cluster (docs/slurm.md): its scheduler places them, its QOS
// preempt them; accel submits, polls, signals and ends them with Slurm's command-line tools.
struct SlurmTypeMapping {
  std::string partition;   // "" = the partition the tier names, else the cluster's default
  std::string gres;        // --gres: "gpu:t4:1"; "" for cpu
  bool simulated = false;  // the cluster's devices of this type are stand-ins (a test cluster's fake GPUs)
};

struct SlurmTierMapping {
  std::string qos;        // --qos: priority, preemption, wall time and limits, held by Slurm
  std::string partition;  // a partition per tier, where a site uses PriorityTier instead of QOS
  bool requeue = true;    // preempted: requeued (the runtime starts again), else cancelled (it ends)
};

// Allocations the service keeps running, idle, for new runtimes of one tier and type: a create
// takes one at once instead of waiting for Slurm's scheduling pass (docs/slurm.md).
struct SlurmWarmPool {
  std::string tier, type;
  int count = 1;
};

struct SlurmConfig {
  std::string bin_dir;  // where sbatch, squeue, scancel, srun, sstat, sacct are; "" = /usr/bin
  std::string account;  // --account, "" = the service user's default
  std::map<std::string, SlurmTypeMapping> types;  // runtime type ("cpu", "t4") -> partition and gres
  std::map<std::string, SlurmTierMapping> tiers;  // tier -> QOS (and partition)
  bool request_limits = true;                     // the tier's runtime_limits as --mem and --cpus-per-task
  double poll_s = 0.05;           // how often waiting runtimes' start beacons are looked for (a stat each)
  double status_s = 1.0;          // squeue's answer is asked anew when older than this
  double command_timeout_s = 20;  // a Slurm tool that takes longer counts as no answer
  std::vector<SlurmWarmPool> warm;
  double warm_max_age_s = 600;  // an unused warm allocation is replaced after this (its time limit runs)
};

struct ServiceConfig {
  std::map<std::string, TierPolicy> tiers;
  std::vector<SimulatedDevices> simulated;
  std::vector<XlaDevices> xla_devices;
  bool discover_gpus = true;       // offer the GPUs NVML finds
  double tick_s = 1.0;             // how often limits are enforced
  double preemption_grace_s = 30;  // SIGTERM, then this long, then SIGKILL (also for idle and lifetime ends)
  // The same for a runtime its user deletes: shorter, since the user is waiting for what it
  // held. A runtime whose processes all end sooner finishes then.
  double delete_grace_s = 5;
  double warning_lead_s = 300;  // warn this long before an idle or lifetime termination
  // Tenant isolation when the service runs as root: each user's workers and jobs run as a uid of
  // their own, tenant_uid_first + the user's tenant number (never reused, docs/security.md), of
  // at most tenant_uid_count users. The range must be free on this machine (no passwd entry).
  long long tenant_uid_first = 400000;
  long long tenant_uid_count = 100000;
  // A service that is not root cannot give jobs another uid: they would run as the service and
  // could rewrite its database. It refuses to start unless this says the operator accepts that.
  bool allow_unisolated = false;
  // A cgroup per runtime (RuntimeCgroups) where the machine allows; false: rlimits only.
  bool use_cgroups = true;
  // Disk space held back next to service.db and given up when a commit finds the disk full:
  // a tenant who fills the shared file system cannot stop the service from recording state.
  double database_reserve_mb = 64;
  int max_queue = 100;
  // Open HTTP connections from one client address (docs/security.md); beyond it: 503.
  int max_connections_per_address = 1000;
  double keep_terminated_s = 600;
  // The accel binary that runs job monitors (`accel __job-monitor`); empty: this process's own
  // executable, which is right for `accel serve` (tests embedding the service name it).
  std::string accel_executable;  // ended runtimes stay in memory this long (always in the database)
  // "local": runtimes on this machine's accelerators; "slurm": runtimes as Slurm jobs.
  std::string executor = "local";
  SlurmConfig slurm;

  // The seed's tiers: free, pro, pro_plus, enterprise.
  static ServiceConfig defaults();
  // Defaults overlaid with the JSON file; throws ValueError naming the file and the field.
  static ServiceConfig load(const std::string& path);
};

}  // namespace accel::runtime
