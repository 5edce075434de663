// Tenant isolation, tried as a hostile tenant would (the service-hardening issue, findings 2 and
// 3): one user's job against another's files, processes and the service's own state; stray
// processes outliving their runtime; and a service that cannot isolate refusing to start.
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "accel/runtime/store.h"
#include "service_fixture.h"

using accel::testing::Json;
using accel::testing::ServiceTest;

namespace {

// The real uid of a process, from /proc/PID/status; -1 when it is gone.
long long uid_of(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Uid:", 0) == 0) return std::stoll(line.substr(4));
  }
  return -1;
}

int processes_of(long long uid) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") == std::string::npos && uid_of(std::stoi(name)) == uid) ++count;
  }
  return count;
}

}  // namespace

TEST_F(ServiceTest, ATenantCannotReadWriteListOrSignalAnotherTenantsFilesAndProcesses) {
  if (geteuid() != 0) GTEST_SKIP() << "tenants get uids of their own only when the service runs as root";
  const std::string victim = create("pete", "cpu");
  const std::string sleeper =
      job("pete", victim, {"sh", "-c", "echo private > mine.txt; echo $$; exec sleep 30"});  // $$ becomes sleep's pid
  ASSERT_TRUE(wait_until([&] { return !output("pete", victim, sleeper).empty(); }, 5));
  const int victim_pid = std::stoi(output("pete", victim, sleeper));
  const std::string workdir = runtime("pete", victim)["workdir"];
  const std::string data = (dir_ / "data").string();

  const std::string attacker = create("paula", "cpu");
  // Each attempt prints "<what>: done" or "<what>: refused".
  const std::string try_function =
      "try() { if sh -c \"$2\" >/dev/null 2>&1; then echo \"$1: done\"; else echo \"$1: refused\"; fi; }; ";
  const std::string on_files = "try read 'cat " + workdir + "/mine.txt'; try write 'echo x > " + workdir +
                               "/planted'; try list-folder 'ls " + workdir + "'; ";
  // The control: the same attempts from the victim's own runtime succeed, so "refused" below
  // is the kernel's answer, not a wrong path.
  const std::string own = job("pete", victim, {"sh", "-c", try_function + on_files + "rm planted"});
  ASSERT_TRUE(wait_until([&] { return job_state("pete", victim, own)["state"] == "exited"; }, 10));
  EXPECT_EQ(output("pete", victim, own), "read: done\nwrite: done\nlist-folder: done\n");

  const std::string attempts = try_function + on_files + "try list-runtimes 'ls " + data + "/runtimes'; " +
                               "try signal 'kill -9 " + std::to_string(victim_pid) +
                               "'; "
                               "try read-database 'cat " +
                               data +
                               "/service.db'; "
                               "try read-job-output 'ls " +
                               data + "/jobs'";
  const std::string tries = job("paula", attacker, {"sh", "-c", attempts});
  ASSERT_TRUE(wait_until([&] { return job_state("paula", attacker, tries)["state"] == "exited"; }, 10));
  EXPECT_EQ(output("paula", attacker, tries),
            "read: refused\nwrite: refused\nlist-folder: refused\nlist-runtimes: refused\nsignal: refused\n"
            "read-database: refused\nread-job-output: refused\n");

  // The victim's job runs on, its file as it was; each tenant has a uid of their own, not root.
  EXPECT_EQ(job_state("pete", victim, sleeper)["state"], "running");
  std::stringstream mine;
  mine << std::ifstream(workdir + "/mine.txt").rdbuf();
  EXPECT_EQ(mine.str(), "private\n");
  EXPECT_FALSE(std::filesystem::exists(workdir + "/planted"));
  const long long pete = uid_of(victim_pid);
  EXPECT_GT(pete, 0);
  struct stat folder {};
  ASSERT_EQ(stat(workdir.c_str(), &folder), 0);
  EXPECT_EQ(folder.st_mode & 07777, 0700u);
  EXPECT_EQ(static_cast<long long>(folder.st_uid), pete);
  const std::string id_job = job("paula", attacker, {"id", "-u"});
  ASSERT_TRUE(wait_until([&] { return job_state("paula", attacker, id_job)["state"] == "exited"; }, 5));
  const long long paula = std::stoll(output("paula", attacker, id_job));
  EXPECT_GT(paula, 0);
  EXPECT_NE(paula, pete);
  struct stat database {};
  ASSERT_EQ(stat((data + "/service.db").c_str(), &database), 0);
  EXPECT_EQ(database.st_mode & 07777, 0600u);
}

// A job that leaves its runtime's process group (setsid) is not reached by the group's SIGKILL;
// once its tenant has no runtime left, every process of the tenant's uid ends.
TEST_F(ServiceTest, ProcessesThatLeftTheirRuntimeEndWithTheTenantsLastRuntime) {
  if (geteuid() != 0) GTEST_SKIP() << "tenants get uids of their own only when the service runs as root";
  const std::string id = create("pete", "cpu");
  const std::string escaper = job("pete", id, {"sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 & id -u"});
  ASSERT_TRUE(wait_until([&] { return job_state("pete", id, escaper)["state"] == "exited"; }, 5));
  const long long uid = std::stoll(output("pete", id, escaper));
  ASSERT_TRUE(wait_until([&] { return processes_of(uid) >= 2; }, 5));  // the worker and the escaped sleep
  const std::string confinement = get("pete", "/v1/runtimes/" + id + "/resources").body["confinement"];
  EXPECT_EQ(call("DELETE", "pete", "/v1/runtimes/" + id).status, 200);
  EXPECT_TRUE(wait_until([&] { return processes_of(uid) == 0; }, 5)) << processes_of(uid) << " left";
  // Without a cgroup the sweep of the tenant's uid ends the escaped sleep, and says so; in a
  // cgroup (which no process leaves) the runtime's end took it already, and the sweep finds none.
  if (confinement.rfind("cgroup v", 0) != 0) {
    accel::runtime::Store store(
        (dir_ / "data" / "service.db").string());  // a deleted runtime's events are the operator's
    bool recorded = false;
    for (const auto& e : store.events(id)) recorded |= e.kind == "strays_killed";
    EXPECT_TRUE(recorded) << confinement;
  }
}

// Run as an ordinary user the service cannot give jobs a uid of their own: a job could rewrite
// the database (the reported escalation made a free user admin). It refuses to start, naming
// the risk and both ways out; told to accept the risk, it starts with a warning.
TEST_F(ServiceTest, AServiceThatIsNotRootRefusesToStartUnlessToldJobsAreNotIsolated) {
  if (geteuid() != 0) GTEST_SKIP() << "the test drops to nobody to start the service as a non-root user";
  const auto folder = dir_ / "unprivileged";
  std::filesystem::create_directories(folder);
  std::filesystem::permissions(folder, std::filesystem::perms::all, std::filesystem::perm_options::add);
  std::ofstream(folder / "strict.json") << R"({"discover_gpus": false})";
  std::ofstream(folder / "lenient.json") << R"({"discover_gpus": false, "allow_unisolated": true})";
  const auto serve_as_nobody = [&](const std::string& config) {
    return accel::testing::run_command("timeout -s TERM 3 setpriv --reuid=65534 --regid=65534 --clear-groups " +
                                       std::string(ACCEL_CLI_PATH) + " serve --listen 127.0.0.1:0 --config " +
                                       (folder / config).string() + " --data-dir " + (folder / "data").string());
  };
  const auto refused = serve_as_nobody("strict.json");
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_NE(refused.output.find("not root, so it cannot give jobs a uid of their own"), std::string::npos)
      << refused.output;
  EXPECT_NE(refused.output.find("\"allow_unisolated\": true"), std::string::npos) << refused.output;
  EXPECT_FALSE(std::filesystem::exists(folder / "data" / "service.db"));

  const auto warned = serve_as_nobody("lenient.json");
  EXPECT_NE(warned.output.find("WARNING: JOBS ARE NOT ISOLATED"), std::string::npos) << warned.output;
  EXPECT_NE(warned.output.find("listening on"), std::string::npos) << warned.output;
}

// Each service kills its tenants' stray processes by uid, so two services whose uid ranges
// overlap would end each other's jobs: the second refuses to start, naming the first.
TEST_F(ServiceTest, ASecondServiceWhoseTenantUidsOverlapRefusesToStart) {
  if (geteuid() != 0) GTEST_SKIP() << "tenant uids are claimed only by a service that runs as root";
  Json config = Json::parse(std::ifstream(dir_ / "config.json"));
  const long long first = config["tenant_uid_first"];
  const auto serve = [&](long long uid_first) {
    config["tenant_uid_first"] = uid_first;
    std::ofstream(dir_ / "other.json") << config.dump();
    return accel::testing::run_command("timeout -s TERM 2 " + std::string(ACCEL_CLI_PATH) +
                                       " serve --listen 127.0.0.1:0 --config " + (dir_ / "other.json").string() +
                                       " --data-dir " + (dir_ / "other-data").string());
  };
  const auto refused = serve(first + 10);
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_NE(refused.output.find("overlap those of the accel serve with pid " + std::to_string(daemon_)),
            std::string::npos)
      << refused.output;
  const auto apart = serve(first + 25);  // the next range: no overlap
  EXPECT_NE(apart.output.find("listening on"), std::string::npos) << apart.output;
}
