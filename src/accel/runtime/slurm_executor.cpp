#include "accel/runtime/slurm_executor.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "accel/core/error.h"
#include "accel/runtime/api_error.h"
#include "accel/runtime/process_spawn.h"

namespace accel::runtime {
namespace {

constexpr const char* kHandlePrefix = "slurm:";

std::string joined(const std::vector<std::string>& ids) {
  std::string out;
  for (const std::string& id : ids) out += (out.empty() ? "" : ",") + id;
  return out;
}

}  // namespace

SlurmExecutor::SlurmExecutor(SlurmConfig config, bool isolating, std::string monitor, std::string state_dir,
                             std::function<void()> on_change)
    : config_(std::move(config)),
      bin_dir_(config_.bin_dir.empty() ? "/usr/bin" : config_.bin_dir),
      beacons_(state_dir + "/started"),
      local_(isolating, std::move(monitor), "", on_change),
      on_change_(std::move(on_change)) {
  for (const char* name : {"sbatch", "squeue", "scancel", "srun", "sstat", "sacct", "scontrol"}) {
    if (access(tool(name).c_str(), X_OK) != 0) {
      throw ValueError("executor slurm: " + tool(name) +
                       " is missing; install Slurm's client tools (Debian: slurm-client) on the service's machine, or "
                       "set executor.bin_dir to where they are");
    }
  }
  // The service's alone: workers (the allocations' owner, this service's user) write here, tenants never.
  std::filesystem::create_directories(beacons_);
  std::filesystem::permissions(state_dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
  // What confines a runtime is the cluster's choice: say what it chose.
  const slurm::ToolResult shown = run({tool("scontrol"), "show", "config"});
  std::string task = "?", proctrack = "?";
  std::istringstream lines(shown.out);
  for (std::string line; std::getline(lines, line);) {
    const auto value = [&line] {
      const auto eq = line.find('=');
      std::string v = eq == std::string::npos ? "" : line.substr(eq + 1);
      return v.substr(v.find_first_not_of(' ') == std::string::npos ? v.size() : v.find_first_not_of(' '));
    };
    if (line.rfind("TaskPlugin ", 0) == 0) task = value();
    if (line.rfind("ProctrackType ", 0) == 0) proctrack = value();
  }
  confinement_ =
      shown.status == 0
          ? "a Slurm allocation per runtime (partition, gres and QOS by the cluster; TaskPlugin=" + task +
                ", ProctrackType=" + proctrack + "), and rlimits per process"
          : "a Slurm allocation per runtime (slurmctld did not answer at start-up: " + slurm::first_line(shown.err) +
                "), and rlimits per process";
  tag_ = service_id(state_dir);
  poller_ = std::thread([this] { poll_pending(); });
  canceller_ = std::thread([this] { cancel_doomed(); });
}

SlurmExecutor::~SlurmExecutor() {
  stopping_ = true;
  // Past each loop's check of stopping_ and into its wait: the notifications below reach them.
  { std::lock_guard<std::mutex> lock(pending_mutex_); }
  { std::lock_guard<std::mutex> lock(warm_mutex_); }
  pending_changed_.notify_all();
  doomed_changed_.notify_all();
  warm_changed_.notify_all();
  if (poller_.joinable()) poller_.join();
  if (warmer_.joinable()) warmer_.join();
  if (canceller_.joinable()) canceller_.join();  // after its last batch: no killed runtime lives on
  // No runtime took these, and the warmer may have dropped some after the canceller's last
  // batch: they leave with the service, not at their time limit.
  std::vector<std::string> idle;
  idle.swap(doomed_);
  std::error_code ec;
  for (const WarmWorker& w : warm_) {
    idle.push_back(w.id);
    std::filesystem::remove(beacons_ + "/" + w.name, ec);
  }
  cancel_now(idle);
}

std::string SlurmExecutor::confinement() const { return confinement_; }

std::string SlurmExecutor::job_id(const Handle& handle) {
  if (handle.rfind(kHandlePrefix, 0) != 0) return "";
  const std::string rest = handle.substr(std::char_traits<char>::length(kHandlePrefix));
  return rest.substr(0, rest.find(':'));
}

std::string SlurmExecutor::job_name(const Handle& handle) {
  const auto colon = handle.find(':', std::char_traits<char>::length(kHandlePrefix));
  return colon == std::string::npos ? "" : "accel-" + handle.substr(colon + 1);
}

std::string SlurmExecutor::step_name(const std::string& exit_path) {
  return "accel-job-" + std::filesystem::path(exit_path).filename().string();
}

std::string SlurmExecutor::describe(const Handle& handle) const {
  const std::string id = job_id(handle);
  return id.empty() ? "process " + std::to_string(LocalExecutor::parse(handle).pid) : "slurm job " + id;
}

slurm::ToolResult SlurmExecutor::run(std::vector<std::string> argv) const {
  return slurm::run_tool(argv, config_.command_timeout_s);
}

SlurmExecutor::Submitted SlurmExecutor::submit(const WorkerSpec& spec, const std::string& name,
                                               const std::string& comment, const std::vector<std::string>& extra) {
  const auto type = config_.types.find(spec.type);
  if (type == config_.types.end())
    return {std::nullopt, "this service's Slurm mapping offers no runtime type " + spec.type};
  const SlurmTierMapping tier = config_.tiers.count(spec.tier) ? config_.tiers.at(spec.tier) : SlurmTierMapping{};
  std::vector<std::string> argv = {tool("sbatch"),
                                   "--parsable",
                                   "--job-name=accel-" + name,
                                   "--output=/dev/null",
                                   "--chdir=/",
                                   "--comment=" + comment,
                                   tier.requeue ? "--requeue" : "--no-requeue"};
  const std::size_t asked_from = argv.size();
  argv.insert(argv.end(), extra.begin(), extra.end());
  const std::string partition = tier.partition.empty() ? type->second.partition : tier.partition;
  if (!partition.empty()) argv.push_back("--partition=" + partition);
  if (!tier.qos.empty()) argv.push_back("--qos=" + tier.qos);
  if (!config_.account.empty()) argv.push_back("--account=" + config_.account);
  if (!type->second.gres.empty()) argv.push_back("--gres=" + type->second.gres);
  if (spec.time_limit_s > 0) argv.push_back("--time=" + std::to_string(slurm::time_limit_minutes(spec.time_limit_s)));
  if (config_.request_limits && spec.limits.memory_gb > 0)
    argv.push_back("--mem=" + std::to_string(static_cast<long long>(std::ceil(spec.limits.memory_gb * 1024))));
  if (config_.request_limits && spec.limits.cpus > 0)
    argv.push_back("--cpus-per-task=" + std::to_string(static_cast<int>(std::ceil(spec.limits.cpus))));
  // The worker writes its start beacon, then only holds the allocation. It ignores SIGTERM (inherited across exec), so
  // a preemption's or accel's SIGTERM leaves the allocation to the jobs for their grace. Its environment is Slurm's
  // default (--export=NONE would have slurmd build root's login environment first: a second more per start, measured in
  // bench/slurm_bench.py's runs).
  const std::string mark = beacons_ + "/" + name;
  std::filesystem::remove(mark);  // a change of type submits the runtime again
  argv.emplace_back("--wrap=trap '' TERM; : > " + slurm::shell_quote(mark) + "; exec sleep infinity");
  const slurm::ToolResult submitted = run(argv);
  const std::optional<std::string> id = slurm::parse_job_id(submitted.out);
  if (submitted.status == 0 && id) return {id, ""};
  std::string asked;  // what was asked for, for the operator to set against the cluster's limits
  for (std::size_t i = asked_from; i + 1 < argv.size(); ++i) asked += " " + argv[i];
  return {std::nullopt, "Slurm did not take the runtime (" + slurm::first_line(submitted.err) + "; asked for" + asked +
                            "): check the executor's mapping for tier " + spec.tier + " and type " + spec.type +
                            " against the cluster's partitions and QOS (docs/slurm.md)"};
}

Handle SlurmExecutor::start_worker(const WorkerSpec& spec) {
  if (!config_.types.count(spec.type))
    throw ApiError(503, "this service's Slurm mapping offers no runtime type " + spec.type);
  std::filesystem::create_directories(spec.workdir);
  local_.hand_over(spec.workdir, spec.who);
  if (std::optional<Handle> warm = take_warm(spec)) return *warm;
  const Submitted submitted =
      submit(spec, spec.runtime_id, "accel " + tag_ + " runtime " + spec.runtime_id + " of " + spec.user);
  if (!submitted.id) throw ApiError(503, submitted.error);
  const Handle handle = kHandlePrefix + *submitted.id + ":" + spec.runtime_id;
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    pending_[*submitted.id] = handle;
  }
  pending_changed_.notify_all();
  return handle;
}

std::string SlurmExecutor::beacon(const Handle& worker) const {
  const auto colon = worker.find(':', std::char_traits<char>::length(kHandlePrefix));
  return colon == std::string::npos ? "" : beacons_ + "/" + worker.substr(colon + 1);
}

bool SlurmExecutor::started_since(const Handle& worker, std::filesystem::file_time_type since) const {
  std::error_code ec;
  const auto written = std::filesystem::last_write_time(beacon(worker), ec);
  return !ec && written >= since;
}

Handle SlurmExecutor::start_job(const Handle& worker, const JobSpec& spec) {
  const std::string id = job_id(worker);
  if (id.empty()) throw Error("no Slurm job to start a job in (handle '" + worker + "')");
  // A step in the runtime's allocation, sharing it with the runtime's other steps (--overlap);
  // the job monitor runs on the node, as root (the allocation's owner), and drops to the tenant.
  std::vector<std::string> argv = {tool("srun"), "--jobid=" + id, "--job-name=" + step_name(spec.exit_path),
                                   "--overlap",  "--quiet",       "--nodes=1",
                                   "--ntasks=1", "--chdir=/",     "--export=ALL"};
  std::vector<std::string> monitor = monitor_arguments(local_.monitor(), spec, {}, true);
  // srun made the output file (its own messages go there); the monitor appends the job's.
  monitor.insert(monitor.begin() + 2, "--append-output");
  argv.insert(argv.end(), monitor.begin(), monitor.end());
  std::vector<std::string> envp = job_environment(local_.job_path(), spec.env);
  for (const char* name : {"SLURM_CONF"}) {
    if (const char* value = std::getenv(name)) envp.push_back(std::string(name) + "=" + value);
  }
  const int pid = spawn_process(argv.front(), argv, envp, 0, "", spec.output_path);
  const Handle handle = LocalExecutor::handle_of({pid, LocalExecutor::start_time(pid), spec.exit_path});
  local_.watch_job(handle);
  return handle;
}

std::map<std::string, slurm::QueuedJob> SlurmExecutor::queue(const std::vector<std::string>& ids) const {
  if (ids.empty()) return {};
  const slurm::ToolResult listed = run({tool("squeue"), "--noheader", "--states=all",
                                        "--format=" + std::string(slurm::kSqueueFormat), "--jobs=" + joined(ids)});
  if (listed.status == 0) return slurm::parse_squeue(listed.out);
  // None of them is known any more (squeue fails when no id of the list is).
  if (listed.err.find("Invalid job id") != std::string::npos) return {};
  throw ExecutorUnavailable("squeue did not answer: " + slurm::first_line(listed.err));
}

std::vector<WorkerStatus> SlurmExecutor::poll_workers(const std::vector<Handle>& workers) {
  std::vector<std::string> ids;
  for (const Handle& worker : workers)
    if (const std::string id = job_id(worker); !id.empty()) ids.push_back(id);
  std::map<std::string, slurm::QueuedJob> queued;
  std::set<std::string> asked;
  std::filesystem::file_time_type asked_at;
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    if (std::chrono::steady_clock::now() - last_at_ < std::chrono::duration<double>(config_.status_s)) {
      queued = last_;
      asked = last_ids_;
      asked_at = last_file_time_;
    }
  }
  if (asked.empty() && !ids.empty()) {  // no answer recent enough: ask
    const auto at = std::chrono::steady_clock::now();
    const auto file_time = std::filesystem::file_time_type::clock::now();
    queued = queue(ids);
    asked = std::set<std::string>(ids.begin(), ids.end());
    asked_at = file_time;
    std::lock_guard<std::mutex> lock(pending_mutex_);
    last_ = queued;
    last_ids_ = asked;
    last_at_ = at;
    last_file_time_ = file_time;
  }
  // Jobs that left squeue's memory (MinJobAge after they ended): what accounting says, if any.
  std::vector<std::string> missing;
  for (const std::string& id : ids)
    if (asked.count(id) && !queued.count(id)) missing.push_back(id);
  std::map<std::string, slurm::AccountedJob> accounted;
  if (!missing.empty()) {
    const slurm::ToolResult sacct = run({tool("sacct"), "--noheader", "--parsable2", "--allocations",
                                         "--format=JobID,State,JobName", "--jobs=" + joined(missing)});
    if (sacct.status == 0) accounted = slurm::parse_sacct(sacct.out);
  }
  std::vector<WorkerStatus> out;
  std::lock_guard<std::mutex> lock(pending_mutex_);
  for (const Handle& worker : workers) {
    const std::string id = job_id(worker);
    WorkerStatus status;
    if (id.empty()) {
      status.detail = "not a Slurm job: " + worker;
    } else if (!asked.count(id)) {
      // Submitted since squeue's last answer: waiting, unless its beacon says it started.
      status.state = started_since(worker, {}) ? WorkerStatus::State::running : WorkerStatus::State::pending;
      status.detail = "slurm job " + id + (status.state == WorkerStatus::State::running ? " started" : " submitted");
    } else if (const auto q = queued.find(id); q != queued.end() && q->second.name != job_name(worker)) {
      // The controller lost the runtime's job (a crash before it saved its state) and gave the
      // id to another: this runtime's allocation is gone.
      status.reason = "lost by the cluster";
      status.detail = "slurm job " + id + " is now another job (" + q->second.name + ")";
      lost_.insert(id);
    } else if (q != queued.end()) {
      status = slurm::worker_status(q->second.state);
      status.detail = "slurm job " + id + " " + q->second.state +
                      (q->second.nodes.empty() ? "" : " on " + q->second.nodes) +
                      (q->second.gres.empty() || q->second.gres == "N/A" ? "" : " (" + q->second.gres + ")") +
                      (q->second.reason.empty() || q->second.reason == "None" ? "" : ": " + q->second.reason);
    } else if (const auto a = accounted.find(id); a != accounted.end() && a->second.name == job_name(worker)) {
      status = slurm::worker_status(a->second.state);
      if (status.state != WorkerStatus::State::ended) {  // accounting's last word on a job the controller forgot
        status.state = WorkerStatus::State::ended;
        status.reason = "lost by the cluster";
      }
      status.detail = "slurm job " + id + " " + a->second.state + " (from accounting; squeue no longer lists it)";
    } else {
      status.detail = "Slurm no longer lists job " + id;
    }
    // Waiting by squeue's answer, but its beacon was written since it was asked: it started.
    if (status.state == WorkerStatus::State::pending && asked.count(id) && started_since(worker, asked_at)) {
      status.state = WorkerStatus::State::running;
      status.detail = "slurm job " + id + " started";
    }
    if (!id.empty()) {
      if (status.state == WorkerStatus::State::pending)
        pending_[id] = worker;
      else
        pending_.erase(id);
    }
    out.push_back(status);
  }
  pending_changed_.notify_all();
  return out;
}

void SlurmExecutor::poll_pending() {
  std::unique_lock<std::mutex> lock(pending_mutex_);
  while (!stopping_) {
    if (pending_.empty()) {
      pending_changed_.wait(lock, [this] { return stopping_.load() || !pending_.empty(); });
      continue;
    }
    pending_changed_.wait_for(lock, std::chrono::duration<double>(config_.poll_s), [this] { return stopping_.load(); });
    if (stopping_) break;
    // A stat per waiting runtime, no call to Slurm: its beacon appears when its worker starts.
    // A requeued runtime's beacon is its earlier run's: only one written after squeue said it
    // waits counts (the answer's time).
    bool started = false;
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (started_since(it->second, last_ids_.count(it->first) ? last_file_time_ : std::filesystem::file_time_type{})) {
        it = pending_.erase(it);
        started = true;
      } else {
        ++it;
      }
    }
    if (started) {
      lock.unlock();
      on_change_();  // the service polls its workers now, not at its next tick
      lock.lock();
    }
  }
}

void SlurmExecutor::terminate(const Handle& worker) {
  const std::string id = job_id(worker);
  if (id.empty()) return;
  // To the job's steps (the runtime's jobs), not to the batch step, which holds the allocation.
  run({tool("scancel"), "--signal=TERM", "--name=" + job_name(worker), id});
}

void SlurmExecutor::kill(const Handle& worker, bool jobs_running) {
  const std::string id = job_id(worker);
  if (id.empty()) return;
  std::error_code ec;
  std::filesystem::remove(beacon(worker), ec);
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    pending_.erase(id);
    if (lost_.count(id)) return;  // its id is another job's now
  }
  // Where jobs run, SIGKILL to their steps now: a step that ignores SIGTERM would hold the
  // allocation through Slurm's KillWait once the worker ends.
  try {
    if (jobs_running) end_jobs(worker, {});
  } catch (const ExecutorUnavailable&) {
    // the canceller's calls end them, or say what is wrong
  }
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    doomed_.push_back(id);
  }
  doomed_changed_.notify_all();
}

void SlurmExecutor::cancel_doomed() {
  std::unique_lock<std::mutex> lock(pending_mutex_);
  while (true) {
    // Woken by ids to cancel, newly ending jobs or the stop; every 100 ms while jobs are ending.
    const std::size_t ending = ending_.size();
    const auto woken = [&] { return stopping_.load() || !doomed_.empty() || ending_.size() != ending; };
    if (ending_.empty()) {
      doomed_changed_.wait(lock, woken);
    } else {
      doomed_changed_.wait_for(lock, std::chrono::milliseconds(100), woken);
    }
    if (stopping_ && doomed_.empty()) return;  // a runtime's jobs end with the service anyway
    std::vector<std::string> ids;
    ids.swap(doomed_);
    std::vector<EndingJobs> now;
    now.swap(ending_);
    lock.unlock();
    cancel_now(ids);
    std::vector<EndingJobs> still;
    for (EndingJobs& jobs : now) {
      if (!finish_ending(jobs)) still.push_back(std::move(jobs));
    }
    lock.lock();
    for (EndingJobs& jobs : still) ending_.push_back(std::move(jobs));
  }
}

bool SlurmExecutor::finish_ending(EndingJobs& jobs) {
  std::erase_if(jobs.sruns, [](const LocalExecutor::Process& p) { return !LocalExecutor::running(p.pid, p.start); });
  try {
    end_steps(jobs.id, jobs.name, &jobs.steps);
  } catch (const ExecutorUnavailable&) {  // the controller is away: asked again next time
  }
  if (jobs.sruns.empty()) return true;
  if (std::chrono::steady_clock::now() < jobs.deadline) return false;
  for (const LocalExecutor::Process& p : jobs.sruns) ::kill(p.pid, SIGKILL);
  return true;
}

void SlurmExecutor::cancel_now(const std::vector<std::string>& ids) {
  if (ids.empty()) return;
  // A plain cancel would take KillWait (5 s here, 30 s by default) with the worker ignoring
  // SIGTERM, its GPU held all along: SIGUSR1 (which it does not ignore) to the batch steps
  // ends the allocations at once; then the cancel, for jobs still pending. About 50 ms from
  // the call to the GPU free (bench/slurm_bench.py).
  std::vector<std::string> usr1 = {tool("scancel"), "--batch", "--signal=USR1"};
  std::vector<std::string> cancel = {tool("scancel")};
  usr1.insert(usr1.end(), ids.begin(), ids.end());
  cancel.insert(cancel.end(), ids.begin(), ids.end());
  run(usr1);
  run(cancel);
}

std::string SlurmExecutor::requeue_reason(const Handle& worker) {
  // Accounting keeps each run of a requeued job: a PREEMPTED one says why it waits again.
  const slurm::ToolResult runs = run({tool("sacct"), "--noheader", "--parsable2", "--duplicates", "--allocations",
                                      "--format=State", "--jobs=" + job_id(worker)});
  return runs.status == 0 && runs.out.find("PREEMPTED") != std::string::npos ? "preempted" : "requeued";
}

void SlurmExecutor::end_steps(const std::string& id, const std::string& name, const std::set<std::string>* only) {
  const slurm::ToolResult steps = run({tool("squeue"), "--noheader", "--steps", "--format=%i|%j", "--jobs=" + id});
  if (steps.status != 0) throw ExecutorUnavailable("squeue did not answer: " + slurm::first_line(steps.err));
  // A plain scancel of a step: the controller sends SIGKILL to its tasks at once (no KillWait for
  // a step) and knows the step ends; a --signal goes to the node past it.
  std::vector<std::string> argv = {tool("scancel"), "--name=" + name};
  std::istringstream lines(steps.out);
  for (std::string line; std::getline(lines, line);) {
    const std::size_t bar = line.find('|');
    if (bar == std::string::npos) continue;
    const std::string step = line.substr(0, bar);
    // The batch step holds the allocation and the extern step belongs to Slurm: both stay.
    if (step.find(".batch") != std::string::npos || step.find(".extern") != std::string::npos) continue;
    if (!only || only->count(line.substr(bar + 1))) argv.push_back(step);
  }
  if (argv.size() > 2) run(argv);
}

bool SlurmExecutor::end_jobs(const Handle& worker, const std::vector<Handle>& jobs) {
  const std::string id = job_id(worker);
  if (id.empty()) return false;
  // Their steps end now (a plain scancel: SIGKILL to the tasks); their sruns then end by
  // themselves. One still asking for its step gets it later: the canceller ends that step once
  // it shows (EndingJobs says why the srun is not killed).
  EndingJobs ending{id, job_name(worker), {}, {}, std::chrono::steady_clock::now() + std::chrono::seconds(30)};
  for (const Handle& job : jobs) {
    const LocalExecutor::Process p = LocalExecutor::parse(job);
    if (!LocalExecutor::running(p.pid, p.start)) continue;
    ending.sruns.push_back(p);
    ending.steps.insert(step_name(p.detail));
  }
  const std::string name = ending.name;
  if (!ending.sruns.empty()) {  // first: with the controller away, the canceller still ends them
    {
      std::lock_guard<std::mutex> lock(pending_mutex_);
      ending_.push_back(std::move(ending));
    }
    doomed_changed_.notify_all();
  }
  end_steps(id, name);
  return true;
}

Usage SlurmExecutor::usage(const Handle& worker) {
  Usage usage;
  const std::string id = job_id(worker);
  if (id.empty()) return usage;
  if (const auto queued = queue({id}); queued.count(id)) {
    const slurm::QueuedJob& job = queued.at(id);
    usage.allocation = {{"scheduler", "slurm"},        {"job_id", id},     {"state", job.state},
                        {"nodes", job.nodes},          {"gres", job.gres}, {"time_used", job.time_used},
                        {"time_limit", job.time_limit}};
  }
  // sstat: the job's running steps as Slurm's accounting gathers them (jobacct_gather), summed.
  const slurm::ToolResult stat = run({tool("sstat"), "--noheader", "--parsable2", "--allsteps",
                                      "--format=JobID,MaxRSS,AveCPU,NTasks", "--jobs=" + id});
  if (stat.status == 0) {
    double rss = 0, cpu = 0, tasks = 0;
    std::istringstream lines(stat.out);
    for (std::string line; std::getline(lines, line);) {
      std::vector<std::string> f;
      std::istringstream fields(line);
      for (std::string field; std::getline(fields, field, '|');) f.push_back(field);
      if (f.size() < 4) continue;
      const double n = std::max(1.0, std::strtod(f[3].c_str(), nullptr));
      rss += slurm::parse_size(f[1]);
      cpu += slurm::parse_duration(f[2]) * n;
      tasks += n;
    }
    usage.memory_bytes = static_cast<std::uint64_t>(rss);
    usage.processes = static_cast<std::uint64_t>(tasks);
    usage.cpu_seconds = cpu;
    usage.allocation.emplace_back("measured_by", "sstat (the steps' largest resident size, their CPU time)");
  } else {
    usage.allocation.emplace_back("measured_by", "nothing: sstat said " + slurm::first_line(stat.err));
  }
  return usage;
}

}  // namespace accel::runtime
