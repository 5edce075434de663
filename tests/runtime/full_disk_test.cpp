// A tenant fills the disk that holds the service's database (the service-hardening issue,
// finding 10: one failed commit made the service answer 500 to everything until restarted, and
// a graceful stop then stored nothing). The data folder is a small tmpfs of its own here.
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "accel/runtime/store.h"
#include "service_fixture.h"

using accel::testing::Json;
using accel::testing::Reply;
using accel::testing::run_command;
using accel::testing::ServiceTest;

namespace {

// A job command whose record takes `kb` kB in the database: its commit needs new pages, which a
// full disk cannot give. A record no larger than an earlier one may fit in space SQLite already
// holds (its write-ahead log keeps its size), so each bulky job is larger than the last.
std::vector<std::string> bulky_command(int kb) {
  std::vector<std::string> command = {"sh", "-c", "true"};
  for (int i = 0; i < kb / 100; ++i) command.push_back(std::string(100'000, 'a' + i));
  return command;
}

}  // namespace

TEST_F(ServiceTest, ATenantWhoFillsTheDiskNeitherStopsTheServiceNorMakesItLoseState) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting the small file system needs root";
  stop_daemon(SIGTERM);
  const auto data = dir_ / "data";
  std::filesystem::remove_all(data);
  std::filesystem::create_directories(data);
  const auto mounted = run_command("mount -t tmpfs -o size=48m,mode=0755 accel-test " + data.string());
  if (mounted.status != 0) GTEST_SKIP() << "cannot mount a tmpfs here: " << mounted.output;
  struct Unmount {
    std::string path;
    ~Unmount() { run_command("umount -l " + path); }
  } unmount{data.string()};
  Json config = Json::parse(std::ifstream(dir_ / "config.json"));
  config["database_reserve_mb"] = 8;
  std::ofstream(dir_ / "config.json") << config.dump();
  tokens_["root"] = add_user("root", "enterprise", true);  // fills the disk; no idle timeout to speak of
  tokens_["paula"] = add_user("paula", "pro", false);
  start_daemon();
  ASSERT_TRUE(std::filesystem::exists(data / "service.db.reserve"));

  const std::string filler = create("root", "cpu");
  const auto fill = [&] {
    const std::string id = job("root", filler, {"sh", "-c", "dd if=/dev/zero of=fill-$$ bs=64k 2>/dev/null"});
    ASSERT_TRUE(wait_until([&] { return job_state("root", filler, id)["state"] == "exited"; }, 20))
        << job_state("root", filler, id);
    // dd ends with "No space left on device": the job's exit status is stored all the same
    // (its monitor holds the space for it from the start).
    EXPECT_EQ(job_state("root", filler, id)["exit_code"], 1);
  };
  // The status and the error only: the job's record holds the whole bulky command.
  const auto bulky_job = [&](const std::string& runtime, int kb) {
    const Reply r = post("paula", "/v1/runtimes/" + runtime + "/jobs", {{"command", bulky_command(kb)}});
    return Reply{r.status, r.body.contains("error") ? r.body : Json{{"id", r.body.value("id", "")}}};
  };
  const std::string worker = create("paula", "cpu");

  // 1. The disk is full: the commit gives up the reserve and goes on.
  fill();
  const Reply first = bulky_job(worker, 300);
  EXPECT_EQ(first.status, 201) << first.body;
  EXPECT_FALSE(std::filesystem::exists(data / "service.db.reserve"));
  EXPECT_NE(log().find("gave up its 8388608-byte reserve"), std::string::npos) << log();

  // 2. Full again and no reserve left. The first change that needs new space is kept but not
  // stored (503, saying so; SQLite's log may still have room for a change or two), or, when a
  // commit of the ticker's failed first, refused before it happens; from then on every change
  // is refused up front, and reads still answer.
  fill();
  Reply failed;
  for (int attempt = 0; attempt < 6 && failed.status != 503; ++attempt) {
    failed = bulky_job(worker, 800);
    ASSERT_TRUE(failed.status == 201 || failed.status == 503) << failed.body;
  }
  ASSERT_EQ(failed.status, 503) << "a full disk never failed a commit";
  const std::string why = failed.body["error"];
  EXPECT_NE(why.find("disk is full"), std::string::npos) << why;
  EXPECT_TRUE(why.find("took effect") != std::string::npos || why.find("nothing was changed") != std::string::npos)
      << why;
  const Reply refused = post("paula", "/v1/runtimes", {{"type", "cpu"}});
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body["error"].get<std::string>().find("nothing was changed"), std::string::npos) << refused.body;
  EXPECT_EQ(get("paula", "/v1/runtimes").status, 200);
  EXPECT_EQ(get("paula", "/v1/runtimes/" + worker).status, 200);
  // A runtime not in memory is looked up in the database, which cannot answer now: 503 (it
  // once answered 200 with a body of null).
  const Reply unreadable = get("paula", "/v1/runtimes/rt-00000000000ff");
  EXPECT_EQ(unreadable.status, 503) << unreadable.body;
  EXPECT_NE(unreadable.body.dump().find("cannot read its database"), std::string::npos) << unreadable.body;
  const Json jobs_in_memory = get("paula", "/v1/runtimes/" + worker + "/jobs").body;
  ASSERT_GE(jobs_in_memory.size(), 1u);

  // 3. The tenant frees the disk: the service recovers by itself, writes what it kept, and
  // makes its reserve again.
  EXPECT_EQ(run_command("rm -f " + (data / "runtimes" / filler).string() + "/fill-*").status, 0);
  std::string recovered;
  ASSERT_TRUE(wait_until(
      [&] {
        const Reply r = post("paula", "/v1/runtimes", {{"type", "cpu"}});
        if (r.status == 201) recovered = r.body["id"];
        return r.status == 201;
      },
      10))
      << log();
  EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(data / "service.db.reserve"); }, 5));

  // 4. A graceful stop stores everything; the database holds what the API said.
  stop_daemon(SIGTERM);
  accel::runtime::Store store((data / "service.db").string());
  for (const Json& job : jobs_in_memory) EXPECT_TRUE(store.find("jobs", job["id"])) << job["id"];
  ASSERT_TRUE(store.find("runtimes", recovered));
  EXPECT_EQ((*store.find("runtimes", worker))["state"], "terminated");  // ended by the stop, and stored
  EXPECT_EQ((*store.find("runtimes", worker))["reason"], "service shutdown");
}
