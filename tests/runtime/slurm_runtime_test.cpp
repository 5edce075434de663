// Runtimes on a Slurm cluster, through accel's API: the test cluster of scripts/slurm-cluster
// (one node on loopback, 16 fake T4s, tiers as QOS). Skipped with the way to start it where no
// cluster answers; ACCEL_REQUIRE_SLURM=1 (CI) makes that a failure instead. The tests share the
// cluster, so ctest runs them one at a time (RESOURCE_LOCK slurm).
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "service_fixture.h"

namespace accel::testing {
namespace {

std::string slurm_unavailable() {
  if (geteuid() != 0) return "the Slurm tests run as root (the test cluster's account holds root)";
  const CommandResult r = run_command("sinfo --noheader --format=%t");
  if (r.status != 0 || r.output.empty()) return "no Slurm cluster answers here (sinfo: " + r.output + ")";
  const CommandResult account = run_command("sacctmgr --noheader --parsable2 show assoc where user=root account=accel");
  if (account.output.find("accel") == std::string::npos)
    return "the cluster has no account 'accel' for root (scripts/slurm-cluster/cluster.sh start makes it)";
  return "";
}

// The Slurm job id of a runtime ("slurm:<id>:<runtime id>" is its worker).
std::string slurm_job(const Json& runtime) {
  const std::string worker = runtime.value("worker", "");
  return worker.rfind("slurm:", 0) == 0 ? worker.substr(6, worker.find(':', 6) - 6) : "";
}

std::string squeue_state(const std::string& job) {
  const CommandResult r = run_command("squeue --noheader --states=all --format=%T --jobs=" + job);
  std::string state = r.output.substr(0, r.output.find('\n'));
  return r.status == 0 ? state : "";
}

class SlurmRuntimeTest : public ServiceTest {
 protected:
  void SetUp() override {
    if (const std::string why = slurm_unavailable(); !why.empty()) {
      if (const char* required = std::getenv("ACCEL_REQUIRE_SLURM"); required && std::string(required) == "1")
        FAIL() << why;
      GTEST_SKIP() << why
                   << "; start the test cluster: scripts/slurm-cluster/cluster.sh install && "
                      "scripts/slurm-cluster/cluster.sh start";
    }
    ServiceTest::SetUp();
  }

  void TearDown() override {
    ServiceTest::TearDown();  // a graceful stop cancels every runtime's Slurm job
    for (const std::string& job : raw_jobs_) run_command("scancel " + job);
  }

  std::string devices_config() const override { return ""; }
  std::string extra_config() const override {
    return R"("executor": {"kind": "slurm", "account": "accel", "poll_s": 0.05,
        "types": {"cpu": {}, "t4": {"gres": "gpu:t4:1", "simulated": true}},
        "tiers": {"free": {"qos": "free"}, "pro": {"qos": "pro"}, "pro_plus": {"qos": "pro_plus"},
                  "enterprise": {"qos": "enterprise"}, "short": {"qos": "free"}, "boxed": {"qos": "free"}}},)";
  }

  // Waits for the runtime to be running: Slurm starts it within seconds on the idle test cluster.
  void await_running(const std::string& user, const std::string& id) {
    ASSERT_TRUE(wait_until([&] { return state(user, id) == "running"; }, 30.0))
        << runtime(user, id).dump() << get(user, "/v1/runtimes/" + id + "/events").body.dump() << log();
  }
  Json await_job_end(const std::string& user, const std::string& id, const std::string& job_id, double seconds = 30) {
    EXPECT_TRUE(wait_until([&] { return job_state(user, id, job_id)["state"] != "running"; }, seconds))
        << job_state(user, id, job_id).dump();
    return job_state(user, id, job_id);
  }
  // A job of Slurm's own, outside accel, that holds `gpus` of the node's T4s and that no tier's
  // runtime can preempt (QOS enterprise preempts the others and none preempts it).
  void hold_gpus(int gpus) {
    const CommandResult r = run_command(
        "sbatch --parsable --account=accel --qos=enterprise --output=/dev/null "
        "--gres=gpu:t4:" +
        std::to_string(gpus) + " --wrap='exec sleep 600'");
    ASSERT_EQ(r.status, 0) << r.output;
    const std::string job = r.output.substr(0, r.output.find_first_of(";\n"));
    raw_jobs_.push_back(job);
    ASSERT_TRUE(wait_until([&] { return squeue_state(job) == "RUNNING"; }, 30.0)) << squeue_state(job);
  }

  std::vector<std::string> raw_jobs_;
};

TEST_F(SlurmRuntimeTest, CreateRunAndDeleteARuntimeAsASlurmJob) {
  const Reply created = post("paula", "/v1/runtimes", {{"type", "cpu"}});
  ASSERT_EQ(created.status, 201) << created.body.dump();
  const std::string id = created.body["id"];
  EXPECT_EQ(created.body["state"], "starting") << "Slurm decides when it runs";
  const std::string job = slurm_job(created.body);
  ASSERT_FALSE(job.empty()) << created.body.dump();
  EXPECT_TRUE(has_event("paula", id, "submitted", "slurm job " + job));
  await_running("paula", id);
  EXPECT_EQ(squeue_state(job), "RUNNING");
  EXPECT_TRUE(has_event("paula", id, "started", "slurm job " + job));

  const std::string j = this->job("paula", id, {"sh", "-c", "echo hello from $(hostname); id -u; exit 3"});
  const Json done = await_job_end("paula", id, j);
  EXPECT_EQ(done["state"], "exited");
  EXPECT_EQ(done["exit_code"], 3);
  const std::string out = output("paula", id, j);
  EXPECT_NE(out.find("hello from"), std::string::npos) << out;
  // The tenant's own uid, not root's (the allocation's owner): the monitor dropped to it.
  const std::string uid = out.substr(out.find('\n') + 1);
  EXPECT_GE(std::atoll(uid.c_str()), 300000) << out;

  const Json resources = get("paula", "/v1/runtimes/" + id + "/resources").body;
  ASSERT_TRUE(resources["allocation"].is_object()) << resources.dump();
  EXPECT_EQ(resources["allocation"]["job_id"], job);
  EXPECT_EQ(resources["allocation"]["state"], "RUNNING");
  EXPECT_NE(resources["confinement"].get<std::string>().find("Slurm"), std::string::npos);

  ASSERT_EQ(call("DELETE", "paula", "/v1/runtimes/" + id).status, 200);
  EXPECT_EQ(get("paula", "/v1/runtimes/" + id).status, 404);
  // Its allocation ends with it (after the delete's grace).
  ASSERT_TRUE(wait_until(
      [&] {
        const std::string s = squeue_state(job);
        return s != "RUNNING" && s != "PENDING";
      },
      20.0))
      << squeue_state(job);
}

TEST_F(SlurmRuntimeTest, AGpuTypeLandsOnAGresGpu) {
  const std::string id = create("paula", "gpu:t4");
  await_running("paula", id);
  const Json rt = runtime("paula", id);
  EXPECT_EQ(rt["type"], "t4");
  EXPECT_TRUE(rt["simulated"].get<bool>()) << "the test cluster's T4s are fake devices: " << rt.dump();
  EXPECT_NE(rt["accelerator_name"].get<std::string>().find("(simulated)"), std::string::npos);
  const std::string j = job("paula", id, {"sh", "-c", "echo CVD=$CUDA_VISIBLE_DEVICES DEV=$ACCEL_DEVICE"});
  EXPECT_EQ(await_job_end("paula", id, j)["exit_code"], 0);
  const std::string out = output("paula", id, j);
  // Slurm set CUDA_VISIBLE_DEVICES to the GPU it allocated (an index of the node's 16).
  const auto at = out.find("CVD=");
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(out[at + 4]))) << out;
  EXPECT_NE(out.find("DEV=sim:0"), std::string::npos) << out;
  const Json resources = get("paula", "/v1/runtimes/" + id + "/resources").body;
  EXPECT_NE(resources["allocation"]["gres"].get<std::string>().find("gpu:t4"), std::string::npos) << resources.dump();
  EXPECT_EQ(resources["gpu"]["type"], "t4");
}

// `accel run` on a runtime Slurm has not started yet waits for it, then streams the job's output.
TEST_F(SlurmRuntimeTest, AccelRunWaitsForTheClusterToStartTheRuntime) {
  const std::string id = create("paula", "gpu:t4");
  const auto r = accel_run("paula", id, "sh -c 'echo gpu=$CUDA_VISIBLE_DEVICES'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("gpu="), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("gpu=\n"), std::string::npos) << "Slurm gave the step a GPU: " << r.output;
}

TEST_F(SlurmRuntimeTest, AHigherQosPreemptsWithSigtermAndGraceAndTheCheckpointedJobResumesWhenRequeued) {
  hold_gpus(15);  // one T4 left
  // paula (tier pro, QOS pro) holds it; root (tier enterprise, QOS enterprise) takes it.
  const std::string low = create("paula", "gpu:t4");
  await_running("paula", low);
  // A training loop's stand-in: checkpoints at SIGTERM and exits 75, as `accel train
  // --checkpoint-dir D --resume` does; run again, it says it resumed.
  const std::string trainer =
      job("paula", low,
          {"sh", "-c",
           "if [ -e ckpt ]; then echo resumed from $(cat ckpt); exit 0; fi; trap 'echo step-7 > ckpt; echo got TERM; "
           "exit 75' TERM; echo training; while :; do sleep 0.1; done"});
  ASSERT_TRUE(wait_until([&] { return output("paula", low, trainer).find("training") != std::string::npos; }, 20.0));

  const std::string high = create("root", "gpu:t4");  // QOS enterprise preempts QOS pro
  const Json stopped = await_job_end("paula", low, trainer, 40);
  EXPECT_EQ(stopped["exit_code"], 75) << output("paula", low, trainer);
  EXPECT_NE(output("paula", low, trainer).find("got TERM"), std::string::npos);
  ASSERT_TRUE(wait_until([&] { return has_event("paula", low, "preempted"); }, 40.0))
      << get("paula", "/v1/runtimes/" + low + "/events").body.dump();
  Json record = runtime("paula", low);
  EXPECT_EQ(record["state"], "starting") << "requeued by Slurm: " << record.dump();
  EXPECT_EQ(record["reason"], "preempted");
  await_running("root", high);

  // Room again: the requeued runtime runs again (Slurm holds a requeued job back for a while;
  // the test lifts that) and its checkpointed job starts again with the same command.
  ASSERT_EQ(call("DELETE", "root", "/v1/runtimes/" + high).status, 200);
  const std::string job_id = slurm_job(record);
  ASSERT_TRUE(wait_until(
      [&] {
        run_command("scontrol update JobId=" + job_id + " StartTime=now");
        return state("paula", low) == "running";
      },
      60.0))
      << runtime("paula", low).dump() << squeue_state(job_id);
  ASSERT_TRUE(wait_until([&] { return has_event("paula", low, "job_resumed", trainer); }, 10.0))
      << get("paula", "/v1/runtimes/" + low + "/events").body.dump();
  const Json jobs = get("paula", "/v1/runtimes/" + low + "/jobs").body;
  ASSERT_EQ(jobs.size(), 2u) << jobs.dump();
  const std::string again = jobs[1]["id"];
  EXPECT_EQ(await_job_end("paula", low, again)["exit_code"], 0);
  EXPECT_NE(output("paula", low, again).find("resumed from step-7"), std::string::npos) << output("paula", low, again);
}

TEST_F(SlurmRuntimeTest, IdleTimeoutEndsTheSlurmJob) {
  const std::string id = create("alice", "cpu");  // free: 1.5 s idle timeout here
  await_running("alice", id);
  const std::string job = slurm_job(runtime("alice", id));
  ASSERT_TRUE(wait_until([&] { return state("alice", id) == "terminated"; }, 20.0)) << runtime("alice", id).dump();
  EXPECT_EQ(runtime("alice", id)["reason"], "idle timeout");
  EXPECT_TRUE(wait_until([&] { return squeue_state(job) != "RUNNING"; }, 20.0)) << squeue_state(job);
}

TEST_F(SlurmRuntimeTest, MaxLifetimeIsTheSlurmTimeLimitWithAccelsWarningFirst) {
  const std::string id = create("sam", "cpu");  // short: 1.5 s lifetime, warned 0.8 s before
  const std::string job = slurm_job(runtime("sam", id));
  // Slurm's own limit is the lifetime with the grace and a minute for its coarse checks: 2 min.
  const CommandResult limit = run_command("squeue --noheader --format=%l --jobs=" + job);
  EXPECT_EQ(limit.output.substr(0, limit.output.find('\n')), "2:00") << limit.output;
  await_running("sam", id);
  ASSERT_TRUE(wait_until([&] { return state("sam", id) == "terminated"; }, 20.0)) << runtime("sam", id).dump();
  EXPECT_EQ(runtime("sam", id)["reason"], "max lifetime");
  EXPECT_TRUE(has_event("sam", id, "warning", "maximum lifetime"));
}

TEST_F(SlurmRuntimeTest, ARestartedServiceReadoptsRunningSlurmJobs) {
  const std::string id = create("paula", "cpu");
  await_running("paula", id);
  const std::string j = job("paula", id, {"sh", "-c", "sleep 3; echo finished"});
  stop_daemon(SIGKILL);  // no graceful stop: the Slurm job and the job's srun live on
  start_daemon();
  EXPECT_EQ(state("paula", id), "running");
  EXPECT_TRUE(has_event("paula", id, "adopted", "slurm job"));
  const Json done = await_job_end("paula", id, j);
  EXPECT_EQ(done["exit_code"], 0);
  EXPECT_NE(output("paula", id, j).find("finished"), std::string::npos);
}

TEST_F(SlurmRuntimeTest, AKilledSlurmctldLosesNoRecord) {
  const std::string id = create("paula", "cpu");
  await_running("paula", id);
  const std::string before = job("paula", id, {"sh", "-c", "echo before"});
  EXPECT_EQ(await_job_end("paula", id, before)["exit_code"], 0);
  const std::string slurm_id = slurm_job(runtime("paula", id));
  std::string pid;
  std::ifstream("/run/slurmctld.pid") >> pid;
  ASSERT_FALSE(pid.empty());
  // Stopped (it saves its state) rather than SIGKILLed: Slurm saves a job's start lazily, and a
  // controller killed within seconds of a start brings the job back as pending (accel then
  // shows it "starting", reason "requeued", until Slurm runs it again: docs/slurm.md).
  ASSERT_EQ(run_command("kill " + pid + " && while kill -0 " + pid + " 2>/dev/null; do sleep 0.1; done").status, 0);
  // Ticks meanwhile get no answer from squeue: the runtime is kept as it was, not ended.
  ASSERT_TRUE(wait_until([&] { return log().find("squeue did not answer") != std::string::npos; }, 30.0)) << log();
  EXPECT_EQ(state("paula", id), "running");
  EXPECT_EQ(job_state("paula", id, before)["exit_code"], 0);
  ASSERT_EQ(run_command("slurmctld").status, 0);
  ASSERT_TRUE(wait_until([&] { return log().find("the executor answers again") != std::string::npos; }, 30.0)) << log();
  // A restarted controller takes a few seconds to take steps in running jobs again.
  ASSERT_TRUE(wait_until(
      [&] { return run_command("timeout 5 srun --jobid=" + slurm_id + " --overlap --quiet true").status == 0; }, 60.0));
  ASSERT_TRUE(wait_until([&] { return state("paula", id) == "running"; }, 20.0)) << runtime("paula", id).dump();
  EXPECT_EQ(slurm_job(runtime("paula", id)), slurm_id) << "the same Slurm job, re-adopted";
  EXPECT_EQ(job_state("paula", id, before)["exit_code"], 0);
  const std::string j = job("paula", id, {"sh", "-c", "echo still here"});
  EXPECT_EQ(await_job_end("paula", id, j)["exit_code"], 0);
  EXPECT_NE(output("paula", id, j).find("still here"), std::string::npos);
  // The next test gets a controller that takes steps in new jobs too.
  EXPECT_TRUE(wait_until(
      [&] { return run_command("timeout 10 srun --account=accel --qos=enterprise --time=1 --quiet true").status == 0; },
      60.0));
}

TEST_F(SlurmRuntimeTest, RestartEndsTheJobsAndKeepsTheAllocation) {
  const std::string id = create("paula", "cpu");
  await_running("paula", id);
  const std::string before = runtime("paula", id)["worker"];
  const std::string j = job("paula", id, {"sleep", "300"});
  ASSERT_EQ(post("paula", "/v1/runtimes/" + id + "/restart", Json::object()).status, 200);
  const Json ended = await_job_end("paula", id, j, 20);
  EXPECT_EQ(ended["state"], "killed") << ended.dump();
  // Its step is gone from the allocation; the batch step that holds it stays.
  const std::string slurm_id = slurm_job(runtime("paula", id));
  EXPECT_TRUE(wait_until(
      [&] {
        const CommandResult steps = run_command("squeue --noheader --steps --format=%i --jobs=" + slurm_id);
        return steps.output.find(slurm_id + ".0") == std::string::npos;
      },
      20.0))
      << run_command("squeue --steps --jobs=" + slurm_id).output;
  EXPECT_EQ(state("paula", id), "running");
  EXPECT_EQ(runtime("paula", id)["worker"], before) << "the same Slurm job: no new wait in the queue";
  const std::string k = job("paula", id, {"true"});
  EXPECT_EQ(await_job_end("paula", id, k)["exit_code"], 0);
}

std::string squeue_field(const std::string& job, const std::string& format) {
  const CommandResult r = run_command("squeue --noheader --states=all --format=" + format + " --jobs=" + job);
  return r.output.substr(0, r.output.find('\n'));
}

// A warm pool of one allocation for pro (paula) T4 runtimes, recycled after a minute.
class SlurmWarmTest : public SlurmRuntimeTest {
 protected:
  std::string extra_config() const override {
    std::string config = SlurmRuntimeTest::extra_config();
    return config.insert(config.find("\"types\""), R"("warm": [{"tier": "pro", "type": "t4", "count": 1}], )"
                                                   R"("warm_max_age_s": )" +
                                                       std::to_string(warm_max_age_s()) + ", ");
  }
  virtual int warm_max_age_s() const { return 60; }
  void TearDown() override {
    const std::string id = service_id();
    SlurmRuntimeTest::TearDown();
    for (const std::string& job : warm_jobs(id)) run_command("scancel " + job);  // a failed test's leftovers
  }
  // The service's id, the mark in its jobs' comments.
  std::string service_id() const {
    std::string id;
    std::ifstream(dir_ / "data" / "slurm" / "service-id") >> id;
    return id;
  }
  // This service's warm jobs that run, by their comment ("accel <service id> warm pro/t4").
  static std::vector<std::string> warm_jobs(const std::string& service) {
    const CommandResult r = run_command("squeue --noheader --states=RUNNING --format='%i|%k'");
    std::vector<std::string> ids;
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);) {
      if (!service.empty() && line.find("|accel " + service + " warm ") != std::string::npos)
        ids.push_back(line.substr(0, line.find('|')));
    }
    return ids;
  }
  std::string metrics() {
    httplib::Client c = client();
    const auto r = c.Get("/metrics");
    return r ? r->body : "";
  }
  // The pool's one ready allocation, once Slurm started it.
  std::string await_warm(const std::string& other_than = "") {
    std::string warm;
    EXPECT_TRUE(wait_until(
        [&] {
          for (const std::string& job : warm_jobs(service_id()))
            if (job != other_than) warm = job;
          return !warm.empty() &&
                 metrics().find(R"(accel_slurm_warm_allocations{tier="pro",type="t4",state="ready"} 1)") !=
                     std::string::npos;
        },
        30.0))
        << metrics() << log();
    return warm;
  }
};

TEST_F(SlurmWarmTest, ARuntimeTakesAWarmAllocationAtOnceAndThePoolRefills) {
  const std::string warm = await_warm();
  ASSERT_FALSE(warm.empty());
  // Waiting, it asks for the tier's limit (1441 minutes: 24 h, the grace and a minute) plus its
  // most idle time and a margin (1 + 2 minutes), and sits behind every real request.
  EXPECT_EQ(squeue_field(warm, "%l"), "1-00:05:00");
  EXPECT_EQ(squeue_field(warm, "%y"), "1000000");
  const Reply created = post("paula", "/v1/runtimes", {{"type", "gpu:t4"}});
  ASSERT_EQ(created.status, 201) << created.body.dump();
  const std::string id = created.body["id"];
  EXPECT_EQ(slurm_job(created.body), warm) << "the pool's allocation, not a new job";
  EXPECT_EQ(created.body["state"], "running") << "no wait for Slurm: the allocation runs already";
  EXPECT_TRUE(has_event("paula", id, "submitted", "a warm allocation"));
  // It is the runtime's now: its comment names it, its nice is a runtime's, and its time limit
  // is the tier's from the hand-out on (1441 minutes from the start, plus the minute it may
  // have stood idle).
  EXPECT_TRUE(wait_until(
      [&] { return squeue_field(warm, "%k").find("runtime " + id + " of paula") != std::string::npos; }, 10.0))
      << squeue_field(warm, "%k");
  const std::string limit = squeue_field(warm, "%l");
  EXPECT_TRUE(limit == "1-00:02:00" || limit == "1-00:03:00") << limit;
  EXPECT_EQ(squeue_field(warm, "%y"), "0");
  // A GPU of the cluster's, as any runtime's.
  const std::string j = job("paula", id, {"sh", "-c", "echo CVD=$CUDA_VISIBLE_DEVICES"});
  EXPECT_EQ(await_job_end("paula", id, j)["exit_code"], 0);
  EXPECT_NE(output("paula", id, j).find("CVD="), std::string::npos);
  EXPECT_EQ(output("paula", id, j).find("CVD=\n"), std::string::npos) << output("paula", id, j);
  // The pool refills with a new allocation, and counts the hand-out.
  const std::string next = await_warm(warm);
  EXPECT_NE(next, warm);
  EXPECT_NE(metrics().find(R"(accel_slurm_warm_handed_out_total{tier="pro",type="t4"} 1)"), std::string::npos);
  // Another tier has no pool: its runtime waits for Slurm as before.
  const std::string other = create("pete", "gpu:t4");
  EXPECT_TRUE(has_event("pete", other, "submitted", "waiting for the cluster"));
  // A graceful stop takes the unused allocation with it.
  stop_daemon(SIGTERM);
  EXPECT_TRUE(wait_until([&] { return squeue_field(next, "%T") != "RUNNING"; }, 20.0)) << squeue_field(next, "%T");
}

TEST_F(SlurmWarmTest, ARestartedServiceEndsWhatItsEarlierRunLeftAndNoRuntimeHolds) {
  const std::string warm = await_warm();
  ASSERT_FALSE(warm.empty());
  const std::string id = create("paula", "cpu");
  await_running("paula", id);
  const std::string held = slurm_job(runtime("paula", id));
  // Another service's job on the same account: not this one's to end.
  const CommandResult other = run_command(
      "sbatch --parsable --account=accel --qos=pro --output=/dev/null --comment='accel 0123456789ab warm pro/t4' "
      "--wrap='exec sleep 600'");
  ASSERT_EQ(other.status, 0) << other.output;
  raw_jobs_.push_back(other.output.substr(0, other.output.find_first_of(";\n")));
  stop_daemon(SIGKILL);  // its warm allocation stays behind in Slurm
  EXPECT_EQ(squeue_field(warm, "%T"), "RUNNING");
  start_daemon();
  // The runtime's job is re-adopted; the old warm one, which no runtime holds, is cancelled.
  EXPECT_TRUE(wait_until([&] { return squeue_field(warm, "%T") != "RUNNING"; }, 20.0)) << squeue_field(warm, "%T");
  EXPECT_NE(log().find("ended 1 worker(s) an earlier run of this service left"), std::string::npos) << log();
  EXPECT_EQ(squeue_field(held, "%T"), "RUNNING");
  const std::string other_state = squeue_field(raw_jobs_.back(), "%T");
  EXPECT_TRUE(other_state == "RUNNING" || other_state == "PENDING") << other_state;
  EXPECT_EQ(state("paula", id), "running");
  EXPECT_FALSE(await_warm(warm).empty()) << "the new run keeps its own pool";
}

// The same pool, recycled after 10 s.
class SlurmWarmRecycleTest : public SlurmWarmTest {
 protected:
  int warm_max_age_s() const override { return 10; }
};

TEST_F(SlurmWarmRecycleTest, AnAllocationIdleLongerThanTheMaxAgeIsReplaced) {
  const std::string warm = await_warm();
  ASSERT_FALSE(warm.empty());
  EXPECT_EQ(squeue_field(warm, "%l"), "1-00:04:00");  // the tier's 1441 minutes, 10 s and the 2 minutes' margin
  // Its time limit runs while it waits: after 10 s a new one takes its place.
  EXPECT_TRUE(wait_until([&] { return squeue_field(warm, "%T") != "RUNNING"; }, 30.0)) << squeue_field(warm, "%T");
  EXPECT_FALSE(await_warm(warm).empty());
  EXPECT_NE(metrics().find(R"(accel_slurm_warm_handed_out_total{tier="pro",type="t4"} 0)"), std::string::npos);
}

}  // namespace
}  // namespace accel::testing
