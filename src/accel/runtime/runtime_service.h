// RuntimeService: Colab-style runtimes on this machine's accelerators. Users of a tier ask for
// a runtime type (cpu, gpu, gpu:t4, tpu, ...); the service leases an accelerator, starts a
// worker process group with the lease in its environment, runs jobs in it, and ends it for
// idleness, lifetime, preemption by a higher-priority user, a crashed worker or the user's
// request. Every change is stored (Store) before it is answered; a restarted service
// re-adopts live workers and jobs and marks the dead ones (docs/runtime.md).
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "accel/runtime/api_error.h"
#include "accel/runtime/executor.h"
#include "accel/runtime/service_config.h"
#include "accel/runtime/store.h"
#include "accel/runtime/uid_range_claim.h"

namespace accel::runtime {

using Json = nlohmann::json;

struct Accelerator {
  std::string id;    // "gpu0", "sim-t4-0"
  std::string type;  // catalog type: "t4"
  std::string kind;  // "gpu" or "tpu"
  std::string name;  // "Tesla T4" or "T4 (simulated)"
  bool simulated = false;
  int device_index = 0;  // CUDA ordinal, or the sim device's index
  double memory_gb = 0;
  std::string pjrt_plugin;  // a TPU served through PJRT: the plugin's path (config's xla_devices)
};

struct Runtime {
  std::string id, user, tier, requested_type, type, accelerator_id, state, reason, workdir;
  int priority = 0;
  bool preemptible = true, background = false;
  double created_at = 0, started_at = 0, ended_at = 0, last_activity = 0, terminate_at = 0;
  bool warned_idle = false, warned_lifetime = false;
  Handle worker;               // the executor's, "" until the first job starts one
  std::string pending_reason;  // why a terminating runtime is ending
  bool deleted = false;        // by its user: no longer in the API (the database keeps it)
};

struct Job {
  std::string id, runtime_id, user, state;  // running, exited, killed
  std::vector<std::string> command;
  Handle handle;  // the executor's
  std::optional<int> exit_code;
  double started_at = 0, ended_at = 0;
};

class RuntimeService {
 public:
  // Seconds a known token is remembered (a revoked or rotated token works at most this long).
  static constexpr double kUserCacheS = 10;
  // How long a graceful stop waits for a database that cannot be written.
  static constexpr double kStopWritesS = 10;
  // Opens <data_dir>/service.db, builds the inventory and reconciles stored runtimes with the
  // processes still alive. `start_ticker` runs enforcement every config.tick_s.
  RuntimeService(ServiceConfig config, std::string data_dir, bool start_ticker = true);
  ~RuntimeService();

  // The header's user; throws ApiError 401. May read the database (a token not seen lately).
  User authenticate(const std::string& authorization_header);
  // The same from memory only, for callers that must not block: nullopt when the token was not
  // looked up lately (call authenticate() where blocking is fine).
  std::optional<User> known_user(const std::string& authorization_header);

  Json runtime_types(const User& user);
  Json create(const User& user, const Json& body);
  // create() and remove() returning the record instead of its JSON, for callers that build the
  // answer (describe()) off the service's lock: the HTTP API's hottest routes.
  Runtime create_runtime(const User& user, const Json& body);
  Runtime remove_runtime(const User& user, const std::string& id);
  Json describe(const Runtime& rt) const { return to_json(rt); }
  Json list(const User& user);
  Json get(const User& user, const std::string& id);
  Json remove(const User& user, const std::string& id);
  Json restart(const User& user, const std::string& id);
  Json change_type(const User& user, const std::string& id, const Json& body);
  Json heartbeat(const User& user, const std::string& id);
  Json run_job(const User& user, const std::string& id, const Json& body);
  Json job(const User& user, const std::string& id, const std::string& job_id);
  // The runtime's jobs, oldest first.
  Json jobs(const User& user, const std::string& id);
  // Output bytes from `offset`; sets `done` once the job has ended and all output was read.
  std::string job_output(const User& user, const std::string& id, const std::string& job_id, std::size_t offset,
                         bool& done);
  Json resources(const User& user, const std::string& id);
  Json events(const User& user, const std::string& id);
  std::string metrics();

  // Enforces limits once: job and worker exits, idle and lifetime (with warnings), preemption
  // deadlines, the queue. Called by the ticker; tests may call it directly.
  void tick();
  // Ends every runtime with reason "service shutdown" (a graceful stop; kill -9 leaves them
  // running to be re-adopted).
  void shutdown();

  const std::vector<Accelerator>& inventory() const { return inventory_; }
  const ServiceConfig& config() const { return config_; }
  Store& store() { return *store_; }

 private:
  Runtime& owned(const User& user, const std::string& id);
  // A runtime only the database still has (ended long ago), as `user` may see it: not deleted,
  // and theirs unless they are an admin.
  std::optional<Json> stored_runtime(const User& user, const std::string& id);
  std::vector<std::string> candidate_types(const User& user, const std::string& requested);
  // Per inventory_ entry, whether a starting, running or terminating runtime holds it: one pass
  // over the active runtimes (a scan per accelerator made admission O(runtimes x accelerators)).
  std::vector<bool> leased_accelerators() const;
  const Accelerator* free_accelerator(const std::vector<std::string>& types) const;
  bool place(Runtime& rt);
  void start(Runtime& rt, const Accelerator* accelerator);
  void ensure_worker(Runtime& rt);
  // An executor that places runtimes itself (Slurm): the type it offers for `types` (the first
  // the executor's mapping has), or ApiError 503 naming what it offers.
  std::string cluster_type(const std::vector<std::string>& types) const;
  // Hands the runtime to such an executor: "starting" until its engine runs it. On a refusal
  // the runtime ends ("refused by the cluster") and the ApiError goes on to the caller.
  void submit(Runtime& rt);
  // The part of a worker's spec its tier and type decide (a warm pool's), and a runtime's whole.
  WorkerSpec worker_template(const std::string& tier, const std::string& type) const;
  WorkerSpec worker_spec(const Runtime& rt);
  // What the executor's poll says of a runtime's worker: started, preempted and requeued, ended.
  void worker_started(Runtime& rt, const WorkerStatus& status);
  void worker_requeued(Runtime& rt, const WorkerStatus& status);
  // Starts a job in rt's worker; the caller saves rt.
  Job& launch_job(Runtime& rt, const std::vector<std::string>& command);
  bool has_running_job(const Runtime& rt) const;
  // Marks rt's running jobs ended: with the status each recorded, else killed (137).
  void record_job_ends(Runtime& rt);
  // Records one job's end, with its job_finished event; killed_code is the exit code a job
  // ended by a signal gets.
  void record_job_end(Runtime& rt, Job& job, const JobStatus& status, std::optional<int> killed_code, double now);
  void begin_termination(Runtime& rt, const std::string& reason, double grace_s);
  void finish_termination(Runtime& rt);
  // Ends rt's processes now (the executor's kill): each running job ends with the status it
  // recorded, or as killed with 137 (128 + SIGKILL, as a shell reports it).
  void kill_worker(Runtime& rt);
  bool try_preempt_for(const Runtime& waiting);
  void process_queue();
  void touch(Runtime& rt);
  void save(const Runtime& rt);
  void save(const Job& job);
  void event(const Runtime& rt, const std::string& kind, const std::string& message);
  Json to_json(const Runtime& rt) const;
  Json to_json(const Job& job) const;
  Environment lease_environment(const Runtime& rt) const;
  // Whom `user`'s processes run as: their own uid (tenant_uid_first + their tenant number - 1)
  // when the service is root, else the service's. ApiError 503 when the range is used up or the
  // uid belongs to an account of this machine.
  Identity identity_of(const std::string& user);
  // The tier's job limits; no address-space cap on a real GPU (CUDA maps far more than RAM).
  JobLimits job_limits(const Runtime& rt) const;
  const TierPolicy& tier_of(const std::string& tier) const;
  std::uint64_t reserve_bytes() const { return static_cast<std::uint64_t>(config_.database_reserve_mb * 1024 * 1024); }
  void reconcile();
  // A copy of active_'s runtimes: safe to iterate while a runtime in it terminates.
  std::vector<Runtime*> active_runtimes() const;
  // Job output and exit files: in the service's own 0700 folder, never in the runtime's folder,
  // where a tenant's job could swap a name for a symlink and have the root monitor write
  // through it (docs/security.md).
  std::string job_dir(const Runtime& rt) const { return data_dir_ + "/jobs/" + rt.id; }
  // Moves a deleted runtime's folders to the trash, emptied off the lock.
  void discard_files(const Runtime& rt);
  // Deletes the paths on a thread of their own (large folders take seconds).
  static void empty_trash(std::vector<std::string> paths);

  ServiceConfig config_;
  std::string data_dir_;
  std::unique_ptr<Store> store_;
  bool isolating_;                            // root: each tenant's processes run as a uid of their own
  std::unique_ptr<UidRangeClaim> uid_claim_;  // this service's tenant uids, machine-wide
  std::unique_ptr<Executor> executor_;
  std::unordered_map<std::string, Identity> identities_;  // user -> uid, as handed out
  std::vector<Accelerator> inventory_;
  std::unordered_map<std::string, std::size_t> inventory_index_;  // accelerator id -> its inventory_ entry
  std::map<std::string, Runtime> runtimes_;  // every runtime in memory; ended ones leave after keep_terminated_s
  // The runtimes not yet terminated (nodes of runtimes_, which stay put): admission and the
  // scheduler scan these, not the thousands of recently ended ones a busy service holds.
  std::map<std::string, Runtime*> active_;
  std::map<std::string, Job> jobs_;
  // Jobs started, for accel_jobs_total: ended runtimes' jobs leave jobs_, and a Prometheus
  // counter must not go down. Starts from the jobs stored when the service starts.
  std::uint64_t jobs_started_ = 0;
  std::mutex mutex_;
  std::atomic<bool> stopping_{false};
  std::condition_variable wake_;
  std::mutex wake_mutex_;
  bool exits_pending_ = false;  // a job monitor exited: tick now (under wake_mutex_)
  std::thread ticker_;

  std::uint64_t requests_ = 0;
  std::string executor_error_;  // the executor's engine's last failure to answer, said once

  std::optional<User> cached_user(const std::string& token_hash);
  std::mutex users_mutex_;
  std::unordered_map<std::string, std::pair<User, double>> known_users_;  // token hash -> user, when looked up
};

double now_seconds();
// "rt-" + 13 hex digits that grow with time (milliseconds since the epoch, times 256, plus a
// count): unique in this process and after a restart, and SQLite appends such keys to its
// indexes instead of dirtying a random page per insert (half the service's disk writes under
// load). Ids carry no authority: every call checks the token's owner.
std::string sequential_id(const char* prefix);
// Keeps sequential_id() above an id loaded from the database (a clock set back after a restart).
void note_existing_id(const std::string& id);

}  // namespace accel::runtime
