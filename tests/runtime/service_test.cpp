// Integration tests of `accel serve`: the real daemon, simulated devices, second-scale limits.
#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include "../support/raw_http.h"
#include "accel/hw/catalog.h"

#include "accel/runtime/local_executor.h"
#include "accel/runtime/store.h"
#include "service_fixture.h"

using accel::testing::Json;
using accel::testing::niced;
using accel::testing::Reply;
using accel::testing::ServiceTest;

TEST_F(ServiceTest, EveryCallNeedsATokenAndUsersSeeOnlyTheirOwnRuntimes) {
  EXPECT_EQ(call("GET", "", "/v1/runtimes").status, 401);
  tokens_["mallory"] = "acc_not_a_real_token";
  EXPECT_EQ(get("mallory", "/v1/runtimes").status, 401);
  const std::string id = create("alice", "cpu");
  EXPECT_EQ(get("bob", "/v1/runtimes/" + id).status, 404);  // exactly as if it did not exist
  EXPECT_EQ(call("DELETE", "bob", "/v1/runtimes/" + id).status, 404);
  EXPECT_EQ(post("bob", "/v1/runtimes/" + id + "/jobs", {{"command", {"true"}}}).status, 404);
  EXPECT_TRUE(get("bob", "/v1/runtimes").body.empty());
  EXPECT_EQ(get("root", "/v1/runtimes").body.size(), 1u);  // an admin sees all
  EXPECT_EQ(get("root", "/v1/runtimes/" + id).status, 200);
  EXPECT_EQ(call("GET", "", "/v1/health").status, 200);
}

TEST_F(ServiceTest, MalformedRequestsAndUnknownTypesAreAnswered400WithTheFix) {
  Reply r = call("POST", "alice", "/v1/runtimes", "{\"type\": ");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["error"].get<std::string>().find("malformed JSON"), std::string::npos) << r.body;
  r = post("alice", "/v1/runtimes", {{"type", "gpu:k80"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["error"].get<std::string>().find("unknown runtime type 'gpu:k80'"), std::string::npos) << r.body;
  EXPECT_NE(r.body["error"].get<std::string>().find("gpu:t4"), std::string::npos) << r.body;
  r = post("alice", "/v1/runtimes", {{"kind", "gpu"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["error"].get<std::string>().find("field 'type' is required"), std::string::npos) << r.body;
  const std::string id = create("alice", "cpu");
  r = post("alice", "/v1/runtimes/" + id + "/jobs", {{"command", "ls"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["error"].get<std::string>().find("field 'command'"), std::string::npos) << r.body;
}

// The HTTP edge answers JSON for its own errors too, refuses large bodies before buffering
// them, and never answers 500 (or leaks a library's message in a header) for bytes that are not
// UTF-8.
TEST_F(ServiceTest, TheEdgeAnswersJsonForUnknownRoutesLargeBodiesAndBadBytes) {
  auto c = client();
  c.set_bearer_token_auth(tokens_["alice"]);
  auto r = c.Get("/v1/no-such-route");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(Json::parse(r->body)["status"], 404) << r->body;
  r = c.Post("/v1/runtimes", std::string(2 << 20, ' '), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(Json::parse(r->body)["error"].get<std::string>().find("too large"), std::string::npos) << r->body;
  r = c.Post("/v1/runtimes", "{\"type\": \"gpu:\xff\xfe\"}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_FALSE(r->has_header("EXCEPTION_WHAT"));
  EXPECT_TRUE(Json::parse(r->body, nullptr, false).is_object()) << r->body;
  EXPECT_EQ(get("alice", "/v1/runtimes").status, 200);  // and the service goes on
  // Numbers are numbers: "-1" used to wrap to 2^64 - 1 and "1e3" read as 1.
  const std::string id = create("alice", "cpu");
  const std::string j = job("alice", id, {"echo", "hi"});
  for (const std::string bad : {"-1", "1e3", "", "99999999999999999999"}) {
    EXPECT_EQ(get("alice", "/v1/runtimes/" + id + "/jobs/" + j + "/output?offset=" + bad).status, 400) << bad;
  }
  // A method a route does not take: 405 with the methods it does (TRACE used to be a bare 400).
  for (const std::string method : {"PUT", "TRACE", "PATCH", "QUERY"}) {
    const std::string answer =
        accel::testing::exchange(port_, method + " /v1/runtimes/" + id +
                                            " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(answer.rfind("HTTP/1.1 405", 0), 0u) << method << answer;
    EXPECT_NE(answer.find("Allow: GET, HEAD, DELETE"), std::string::npos) << method << answer;
  }
  // A POST without Content-Length has an empty body (RFC 9112 6.3; cpp-httplib answered 400).
  const std::string unsized = accel::testing::exchange(
      port_, "POST /v1/runtimes/" + id + "/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokens_["alice"] +
                 "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(unsized.rfind("HTTP/1.1 200", 0), 0u) << unsized;
  // A GET's body is read whole, never taken for the next request on the connection (it was:
  // this body became a second request, answered 404).
  const std::string body = "GET /v1/no-such-route HTTP/1.1\r\n\r\n";
  const std::string two = accel::testing::exchange(
      port_, "GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                 body + "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(two.find("404"), std::string::npos) << two;
  EXPECT_NE(two.find("HTTP/1.1 200", two.find("HTTP/1.1 200") + 1), std::string::npos) << two;  // both answered
}

// The OpenAPI description is served, and is the one docs/api.md describes: the same routes and
// methods, and the runtime types the catalog has (schemathesis then holds the live service to
// it: scripts/api-check.sh).
TEST_F(ServiceTest, TheOpenApiDescriptionIsServedAndMatchesTheDocsAndTheCatalog) {
  httplib::Client c = client();
  const auto r = c.Get("/v1/openapi.json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const Json spec = Json::parse(r->body);
  EXPECT_EQ(spec["openapi"], "3.1.0");
  std::set<std::string> described;
  for (const auto& [path, operations] : spec["paths"].items())
    for (const auto& [method, operation] : operations.items()) described.insert(method + " " + path);
  // docs/api.md's route table: rows that begin with | `METHOD /path...`.
  std::ifstream doc(std::string(ACCEL_SOURCE_DIR) + "/docs/api.md");
  std::set<std::string> documented;
  const std::regex row(R"(^\| `(GET|POST|DELETE) ([^ `?]+)[^`]*` \|)");
  for (std::string line; std::getline(doc, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) continue;
    std::string method = m[1];
    std::transform(method.begin(), method.end(), method.begin(), ::tolower);
    documented.insert(method + " " + m[2].str());
  }
  EXPECT_EQ(described, documented);
  std::vector<std::string> catalog_types = {"cpu", "gpu", "tpu"};
  for (const auto& spec_type : accel::hw::accelerator_catalog())
    catalog_types.push_back(std::string(spec_type.kind) + ":" + spec_type.type);
  EXPECT_EQ(spec["components"]["schemas"]["RuntimeTypeName"]["enum"].get<std::vector<std::string>>(), catalog_types);
}

TEST_F(ServiceTest, JobsAreListedAndListsPageAndErrorsDoNotEchoWholeInputs) {
  const std::string id = create("alice", "cpu");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(job("alice", id, {"true"}));
  Reply r = get("alice", "/v1/runtimes/" + id + "/jobs");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.body.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(r.body[i]["id"], ids[i]);  // oldest first
  EXPECT_EQ(get("bob", "/v1/runtimes/" + id + "/jobs").status, 404);       // another user's runtime
  httplib::Client c = client();
  const httplib::Headers auth{{"Authorization", "Bearer " + tokens_.at("alice")}};
  auto page = c.Get("/v1/runtimes/" + id + "/jobs?limit=2", auth);
  ASSERT_TRUE(page);
  EXPECT_EQ(Json::parse(page->body).size(), 2u);
  EXPECT_EQ(page->get_header_value("X-Accel-Total-Count"), "3");
  EXPECT_EQ(page->get_header_value("X-Accel-Next-Offset"), "2");
  page = c.Get("/v1/runtimes/" + id + "/jobs?offset=2&limit=2", auth);
  ASSERT_TRUE(page);
  EXPECT_EQ(Json::parse(page->body)[0]["id"], ids[2]);
  EXPECT_FALSE(page->has_header("X-Accel-Next-Offset"));
  for (const std::string bad : {"limit=1001", "limit=-1", "offset=1e3"}) {
    EXPECT_EQ(get("alice", "/v1/runtimes?" + bad).status, 400) << bad;
  }
  // A 100 kB input is not echoed back whole; a NUL in it does not cut the message.
  r = post("alice", "/v1/runtimes", {{"type", std::string(100000, 'x')}});
  EXPECT_EQ(r.status, 400);
  const std::string message = r.body["error"];
  EXPECT_LE(message.size(), 1024u);
  EXPECT_NE(message.find("bytes in all"), std::string::npos) << message;
  r = post("alice", "/v1/runtimes", {{"type", std::string("gpu:a\0after", 11)}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["error"].get<std::string>().find("after"), std::string::npos) << r.body;
}

TEST_F(ServiceTest, TiersGateTypesAndConcurrency) {
  Reply r = post("alice", "/v1/runtimes", {{"type", "gpu:a100"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body["error"].get<std::string>().find("tier free does not include a100"), std::string::npos) << r.body;
  const std::string id = create("alice", "gpu:t4");
  EXPECT_EQ(state("alice", id), "running");
  EXPECT_TRUE(runtime("alice", id)["simulated"].get<bool>());
  r = post("alice", "/v1/runtimes", {{"type", "cpu"}});
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.body["error"].get<std::string>().find("tier free allows 1 runtime"), std::string::npos) << r.body;
  // No capacity: 503 when the caller does not want to queue.
  r = post("paula", "/v1/runtimes", {{"type", "gpu:t4"}, {"wait", false}});
  EXPECT_EQ(r.status, 503) << r.body;
  const Json types = get("alice", "/v1/runtime-types").body;
  EXPECT_EQ(types["tier"], "free");
}

TEST_F(ServiceTest, TheQueueServesHigherPriorityFirst) {
  const std::string holder = create("pete", "gpu:t4");  // pro_plus: not preemptible
  const std::string low = create("alice", "gpu:t4");    // free, priority 0: queued
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string high = create("paula", "gpu:t4");  // pro, priority 1: queued behind, served first
  EXPECT_EQ(state("alice", low), "queued");
  EXPECT_EQ(state("paula", high), "queued");
  EXPECT_EQ(call("DELETE", "pete", "/v1/runtimes/" + holder).status, 200);
  ASSERT_TRUE(wait_until([&] { return state("paula", high) == "running"; }, 5));
  EXPECT_EQ(state("alice", low), "queued");
  EXPECT_EQ(call("DELETE", "paula", "/v1/runtimes/" + high).status, 200);
  EXPECT_TRUE(wait_until([&] { return state("alice", low) == "running"; }, 5));
}

TEST_F(ServiceTest, PreemptionSendsSigtermFirstAndWaitsTheGracePeriod) {
  const std::string victim = create("alice", "gpu:t4");
  // Its checkpoint waits for the test's go (a file in its folder): what the service does during
  // the grace is checked at a known point of it, not raced against a timer (with a 0.3 s
  // checkpoint, "terminating" had 0.3 s to be seen, and a loaded run once missed it). The
  // runtime ends when the job does.
  const std::string job = this->job("alice", victim,
                                    {"sh", "-c",
                                     "trap 'echo got SIGTERM; while [ ! -e go ]; do sleep 0.02; done; echo saved; "
                                     "exit 75' TERM; echo ready; while :; do sleep 0.05; done"});
  ASSERT_TRUE(wait_until([&] { return output("alice", victim, job).find("ready") != std::string::npos; }, 5));
  const std::string winner = create("paula", "gpu:t4");  // priority 1 > 0, and free runtimes are preemptible
  EXPECT_EQ(state("paula", winner), "queued");
  ASSERT_TRUE(wait_until([&] { return output("alice", victim, job).find("got SIGTERM") != std::string::npos; }, 5));
  // The grace runs: the victim is terminating, and the winner waits for its accelerator.
  EXPECT_EQ(state("alice", victim), "terminating");
  EXPECT_EQ(state("paula", winner), "queued");
  std::ofstream(dir_ / "data" / "runtimes" / victim / "go").close();
  ASSERT_TRUE(wait_until([&] { return state("paula", winner) == "running"; }, 5));
  EXPECT_NE(output("alice", victim, job).find("saved"), std::string::npos);
  const Json ended = runtime("alice", victim);
  EXPECT_EQ(ended["state"], "terminated");
  EXPECT_EQ(ended["reason"], "preempted");
  // It checkpointed and exited as `accel train --checkpoint-dir` does on SIGTERM (75), which the
  // events name with what to do next.
  EXPECT_EQ(job_state("alice", victim, job)["exit_code"], 75);
  EXPECT_TRUE(has_event("alice", victim, "job_finished", "run it again with --resume"));
}

TEST_F(ServiceTest, IdleTimeoutWithoutBackgroundExecutionDespiteARunningJob) {
  const std::string id = create("alice", "cpu");
  // The job gets SIGTERM and the grace period to checkpoint, as on preemption.
  const std::string job = this->job(
      "alice", id, {"sh", "-c", "trap 'echo got SIGTERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"});
  ASSERT_TRUE(wait_until([&] { return state("alice", id) == "terminated"; }, 8));
  EXPECT_EQ(runtime("alice", id)["reason"], "idle timeout");
  EXPECT_TRUE(has_event("alice", id, "warning", "idle"));
  EXPECT_TRUE(has_event("alice", id, "terminating", "SIGKILL in 1 s"));
  EXPECT_NE(output("alice", id, job).find("got SIGTERM"), std::string::npos) << output("alice", id, job);
  EXPECT_EQ(job_state("alice", id, job)["exit_code"], 0);
}

// `accel run` is attached: it sends heartbeats, so a free-tier runtime (1.5 s idle timeout here,
// no background execution) outlives a 3 s job it watches (once the job was killed with no
// reason printed).
TEST_F(ServiceTest, AccelRunKeepsItsRuntimeAliveWhileAttached) {
  const std::string id = create("alice", "cpu");
  const auto r = accel_run("alice", id, "sh -c 'sleep 3; echo done'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "done\n");
  EXPECT_EQ(state("alice", id), "running");
}

// `accel run` on a queued runtime waits for it to be placed, then runs the command.
TEST_F(ServiceTest, AccelRunWaitsForAQueuedRuntime) {
  const std::string holder = create("paula", "gpu:t4");   // the only T4
  const std::string waiting = create("alice", "gpu:t4");  // free tier: queued, preempts no one
  ASSERT_EQ(state("alice", waiting), "queued");
  accel::testing::CommandResult r;
  std::thread run([&] { r = accel_run("alice", waiting, "echo placed"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  ASSERT_EQ(call("DELETE", "paula", "/v1/runtimes/" + holder).status, 200);
  run.join();
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("is queued; waiting for it to run"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("placed\n"), std::string::npos) << r.output;
}

TEST_F(ServiceTest, HeartbeatsKeepARuntimeAlive) {
  const std::string id = create("alice", "cpu");
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(post("alice", "/v1/runtimes/" + id + "/heartbeat", Json::object()).status, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  EXPECT_EQ(state("alice", id), "running");  // 3 s > the 1.5 s idle timeout
}

TEST_F(ServiceTest, BackgroundExecutionKeepsARuntimeWithAJobAlive) {
  const std::string busy = create("pete", "cpu");
  job("pete", busy, {"sleep", "30"});
  const std::string idle = create("pete", "gpu:t4");
  // Waited for rather than slept for (a loaded machine may tick late): once the later runtime
  // has timed out, the busy one is past its idle timeout too.
  ASSERT_TRUE(wait_until([&] { return state("pete", idle) == "terminated"; }, 10));
  EXPECT_EQ(runtime("pete", idle)["reason"], "idle timeout");
  EXPECT_EQ(state("pete", busy), "running");
}

TEST_F(ServiceTest, MaxLifetimeEndsARuntimeAfterAWarning) {
  const std::string id = create("sam", "cpu");
  ASSERT_TRUE(wait_until([&] { return state("sam", id) == "terminated"; }, 6));
  EXPECT_EQ(runtime("sam", id)["reason"], "max lifetime");
  EXPECT_TRUE(has_event("sam", id, "warning", "maximum lifetime"));
}

TEST_F(ServiceTest, RestartKeepsFilesAndChangeTypeMovesTheLease) {
  const std::string id = create("pete", "cpu");
  const std::string writer = job("pete", id, {"sh", "-c", "echo kept > notes.txt"});
  ASSERT_TRUE(wait_until([&] { return job_state("pete", id, writer)["state"] == "exited"; }, 5));
  const std::string sleeper = job("pete", id, {"sleep", "30"});
  const int worker = worker_pid("pete", id);
  ASSERT_GT(worker, 0);
  Reply r = post("pete", "/v1/runtimes/" + id + "/restart", Json::object());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(job_state("pete", id, sleeper)["state"], "killed");           // its processes are gone ...
  EXPECT_EQ(job_state("pete", id, sleeper)["exit_code"], 128 + SIGKILL);  // ... with the status a shell reports
  EXPECT_EQ(job_state("pete", id, writer)["exit_code"], 0);               // an ended job keeps its own
  EXPECT_TRUE(wait_until([&] { return kill(worker, 0) != 0; }, 5));
  EXPECT_EQ(r.body["state"], "running");  // ... the runtime is not
  r = post("pete", "/v1/runtimes/" + id + "/change-type", {{"type", "gpu:a100"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["type"], "a100");
  EXPECT_EQ(r.body["accelerator"], "sim-a100-0");
  const std::string reader =
      job("pete", id, {"sh", "-c", "cat notes.txt; echo device=$ACCEL_DEVICE simulated=$ACCEL_SIMULATED"});
  ASSERT_TRUE(wait_until([&] { return job_state("pete", id, reader)["state"] == "exited"; }, 5));
  EXPECT_EQ(output("pete", id, reader), "kept\ndevice=sim:0 simulated=1\n");
  const Json resources = get("pete", "/v1/runtimes/" + id + "/resources").body;
  EXPECT_EQ(resources["gpu"]["simulated"], true);
  EXPECT_GT(resources["ram"]["total"].get<double>(), 0);
}

// The default tiers' job limits (service_config.cpp): Free 12.7 GB address space, 4,096 files,
// 100 GB files, nice 10; Pro+ 51 GB, 16,384 files, 400 GB, nice 0. Read from the job's own
// /proc, so the test sees what the kernel enforces. Nice adds to the service's own (the suite
// may itself run under nice).
TEST_F(ServiceTest, JobsRunUnderTheirTiersLimits) {
  const std::vector<std::string> show = {
      "sh", "-c",
      "grep -E '^Max (address space|open files|file size)' /proc/self/limits | tr -s ' ' | cut -d' ' -f4-5;"
      "cut -d' ' -f19 /proc/self/stat"};
  const auto limits_of = [&](const std::string& user, const std::string& type) {
    const std::string id = create(user, type);
    const std::string reader = job(user, id, show);
    EXPECT_TRUE(wait_until([&] { return job_state(user, id, reader)["state"] == "exited"; }, 5));
    return output(user, id, reader);
  };
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  EXPECT_EQ(limits_of("alice", "gpu:t4"), std::to_string(static_cast<long long>(100 * kGiB)) + " " +
                                              std::to_string(static_cast<long long>(100 * kGiB)) + "\n4096 4096\n" +
                                              std::to_string(static_cast<long long>(12.7 * kGiB)) + " " +
                                              std::to_string(static_cast<long long>(12.7 * kGiB)) + "\n" + niced(10) +
                                              "\n");
  EXPECT_EQ(limits_of("pete", "cpu"), std::to_string(static_cast<long long>(400 * kGiB)) + " " +
                                          std::to_string(static_cast<long long>(400 * kGiB)) + "\n16384 16384\n" +
                                          std::to_string(static_cast<long long>(51 * kGiB)) + " " +
                                          std::to_string(static_cast<long long>(51 * kGiB)) + "\n" + niced(0) + "\n");
}

// Jobs get a declared environment, not the daemon's (its variables, a PATH through folders the
// worker user cannot search), and a missing command is named as missing, not "Permission denied".
TEST_F(ServiceTest, JobsGetADeclaredEnvironmentAndMissingCommandsAreNamed) {
  const std::string id = create("pete", "cpu");
  const std::string env = job("pete", id, {"sh", "-c", "echo secret=${ACCEL_TEST_DAEMON_SECRET:-none}; echo $PATH"});
  ASSERT_TRUE(wait_until([&] { return job_state("pete", id, env)["state"] == "exited"; }, 5));
  const std::string accel_dir = std::filesystem::path(ACCEL_CLI_PATH).parent_path().string();
  EXPECT_EQ(output("pete", id, env),
            "secret=none\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" + accel_dir + "\n");
  const std::string missing = job("pete", id, {"no-such-command-in-accel-tests"});
  ASSERT_TRUE(wait_until([&] { return job_state("pete", id, missing)["state"] == "exited"; }, 5));
  EXPECT_EQ(job_state("pete", id, missing)["exit_code"], 127);
  EXPECT_NE(output("pete", id, missing).find("no-such-command-in-accel-tests: command not found in this runtime"),
            std::string::npos)
      << output("pete", id, missing);
}

// The reported root exploit: a job replaced its runtime's `.accel` folder (where the root job
// monitor wrote output and exit files) with a symlink, so the next job's files were written as
// root wherever it pointed. Job files now live in the service's own 0700 folder.
TEST_F(ServiceTest, AJobsSymlinksCannotMakeTheMonitorWriteElsewhere) {
  const std::string id = create("pete", "cpu");
  const auto victim = dir_ / "victim";
  std::filesystem::create_directories(victim);
  std::ofstream(victim / "secret") << "untouched\n";
  const std::string planter = job("pete", id,
                                  {"sh", "-c",
                                   "rm -rf .accel; ln -s " + victim.string() + " .accel; for i in 0 1 2 3; do ln -s " +
                                       (victim / "secret").string() + " job-$i.out; done; echo planted"});
  ASSERT_TRUE(wait_until([&] { return job_state("pete", id, planter)["state"] == "exited"; }, 5));
  ASSERT_EQ(output("pete", id, planter), "planted\n");
  const std::string next = job("pete", id, {"sh", "-c", "echo written"});
  ASSERT_TRUE(wait_until([&] { return job_state("pete", id, next)["state"] == "exited"; }, 5));
  EXPECT_EQ(output("pete", id, next), "written\n");
  EXPECT_EQ(job_state("pete", id, next)["exit_code"], 0);
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(victim)) names.push_back(entry.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"secret"});
  std::stringstream secret;
  secret << std::ifstream(victim / "secret").rdbuf();
  EXPECT_EQ(secret.str(), "untouched\n");
  const auto jobs = std::filesystem::status(dir_ / "data" / "jobs").permissions();
  EXPECT_EQ(jobs & std::filesystem::perms::all, std::filesystem::perms::owner_all);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "data" / "jobs" / id / (next + ".out")));
}

// Changing type is held to the same limits as creating: the tier's GPU/TPU count, and the
// lifetime clock, which runs from creation (switching types every few seconds once kept a
// runtime alive past its maximum lifetime).
TEST_F(ServiceTest, ChangeTypeKeepsTheTiersGpuLimitAndTheLifetimeClock) {
  const std::string gpu = create("paula", "gpu:t4");  // pro: 1 accelerated runtime at a time
  const std::string cpu = create("paula", "cpu");
  const Reply r = post("paula", "/v1/runtimes/" + cpu + "/change-type", {{"type", "gpu"}});
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_NE(r.body["error"].get<std::string>().find("allows 1 GPU/TPU"), std::string::npos) << r.body;
  EXPECT_EQ(runtime("paula", cpu)["type"], "cpu");
  EXPECT_EQ(state("paula", gpu), "running");

  const auto created = std::chrono::steady_clock::now();
  const std::string hopper = create("sam", "cpu");  // tier short: 1.5 s lifetime, 1 s grace
  for (int i = 0; i < 20 && state("sam", hopper) == "running"; ++i) {
    post("sam", "/v1/runtimes/" + hopper + "/change-type", {{"type", "cpu"}});
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(wait_until([&] { return state("sam", hopper) == "terminated"; }, 6));
  EXPECT_EQ(runtime("sam", hopper)["reason"], "max lifetime");
  // Ended ~2.5 s after creation, while still hopping; a clock restarted by each change would
  // only run out 1.5 s after the 4 s of hopping.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - created).count(), 4.5);
}

// After a restart a stored worker PID may name an unrelated process (PIDs are reused). The
// test cannot choose PIDs, so it points the record at an unrelated group leader, as a reused PID
// would: the service must neither adopt it nor, on delete, kill it.
TEST_F(ServiceTest, AStoredPidThatNowNamesAnotherProcessIsNeitherAdoptedNorKilled) {
  const std::string id = create("pete", "cpu");
  job("pete", id, {"sleep", "30"});
  const int worker = worker_pid("pete", id);
  ASSERT_GT(worker, 0);
  stop_daemon(SIGKILL);
  kill(-worker, SIGKILL);  // the worker dies while the service is down ...
  // A reused PID names a process started later (the PIDs must wrap around first). Start times
  // count clock ticks (10 ms): one started within the worker's tick would look like it, which a
  // fast machine managed here (the fresh-root CI run), so the stranger starts a few ticks on.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const pid_t stranger = fork();  // ... and an unrelated process leads a group now
  if (stranger == 0) {
    setpgid(0, 0);
    execl("/bin/sleep", "sleep", "60", static_cast<char*>(nullptr));
    _exit(127);
  }
  {
    accel::runtime::Store store((dir_ / "data" / "service.db").string());
    auto doc = store.find("runtimes", id);
    ASSERT_TRUE(doc.has_value());
    auto worker = accel::runtime::LocalExecutor::parse((*doc)["worker"]);
    worker.pid = stranger;  // the stored start time stays the worker's
    (*doc)["worker"] = accel::runtime::LocalExecutor::handle_of(worker);
    store.put("runtimes", id, "pete", [doc] { return *doc; });
    store.sync();
  }
  start_daemon();
  EXPECT_EQ(state("pete", id), "terminated");
  EXPECT_EQ(runtime("pete", id)["reason"], "worker crashed");
  call("DELETE", "pete", "/v1/runtimes/" + id);
  int status = 0;  // our child: signalled, it would be a zombie that kill(pid, 0) still finds
  EXPECT_EQ(waitpid(stranger, &status, WNOHANG), 0) << "the unrelated process was signalled";
  kill(stranger, SIGKILL);
  waitpid(stranger, nullptr, 0);
}

// Deleting a runtime with many files answers at once and holds no one up: its folders go to the
// trash and are emptied off the service's lock (100k files once held every request for seconds).
TEST_F(ServiceTest, DeletingARuntimeWithManyFilesAnswersAtOnce) {
  const std::string id = create("pete", "cpu");
  const std::string maker =
      job("pete", id, {"sh", "-c", "mkdir many && cd many && seq 100000 | xargs touch && echo made"});
  ASSERT_TRUE(wait_until([&] { return job_state("pete", id, maker)["state"] == "exited"; }, 60));
  ASSERT_EQ(output("pete", id, maker), "made\n");
  const std::string workdir = runtime("pete", id)["workdir"];
  const auto asked = std::chrono::steady_clock::now();
  EXPECT_EQ(call("DELETE", "pete", "/v1/runtimes/" + id).status, 200);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count(), 0.5);
  EXPECT_TRUE(wait_until([&] { return !std::filesystem::exists(workdir); }, 5));
  EXPECT_TRUE(wait_until([&] { return std::filesystem::is_empty(dir_ / "data" / "trash"); }, 30));
}

// Delete ends a runtime as every end does: SIGTERM, delete_grace_s (1 s here) for jobs to
// checkpoint, SIGKILL for those still running, then its files and its accelerator are freed.
TEST_F(ServiceTest, DeleteGivesJobsTheirGraceThenFreesEverything) {
  const std::string id = create("alice", "gpu:t4");
  const std::string workdir = runtime("alice", id)["workdir"];
  const std::string saved = (dir_ / ("checkpoint-" + id)).string();  // where root's test reads it
  std::filesystem::permissions(dir_, std::filesystem::perms::all, std::filesystem::perm_options::add);
  const std::string careful = job("alice", id,
                                  {"sh", "-c",
                                   "trap 'sleep 0.3; echo saved > " + saved +
                                       "; exit 0' TERM; echo ready; "
                                       "while :; do sleep 0.05; done"});
  const std::string stubborn = job("alice", id, {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"});
  ASSERT_TRUE(wait_until(
      [&] { return output("alice", id, careful) == "ready\n" && output("alice", id, stubborn) == "ready\n"; }, 5));
  EXPECT_TRUE(std::filesystem::exists(workdir));
  const auto asked = std::chrono::steady_clock::now();
  const Reply r = call("DELETE", "alice", "/v1/runtimes/" + id);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count(), 0.5);  // answered at once
  EXPECT_EQ(r.body["state"], "terminating");
  EXPECT_EQ(r.body["deleted"], true);
  const std::string waiter = create("paula", "gpu:t4");  // the T4 is held through the grace ...
  EXPECT_EQ(state("paula", waiter), "queued");
  ASSERT_TRUE(wait_until([&] { return state("paula", waiter) == "running"; }, 10));  // ... and then free
  EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count(),
            0.9);  // stubborn waited it out
  std::string checkpoint;
  std::ifstream(saved) >> checkpoint;
  EXPECT_EQ(checkpoint, "saved");  // the careful job had its time
  std::filesystem::remove(saved);
  // Deleted is gone: the runtime, its jobs and events answer 404, and a second delete too.
  for (const char* path : {"", "/jobs", "/events", "/resources"})
    EXPECT_EQ(get("alice", "/v1/runtimes/" + id + path).status, 404) << path;
  EXPECT_EQ(call("DELETE", "alice", "/v1/runtimes/" + id).status, 404);
  EXPECT_EQ(get("alice", "/v1/runtimes").body.size(), 0u);
  EXPECT_TRUE(wait_until([&] { return !std::filesystem::exists(workdir); }, 5));
  accel::runtime::Store store((dir_ / "data" / "service.db").string());
  const auto kept = store.find("runtimes", id);  // the operator's record
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ((*kept)["state"], "terminated");
  EXPECT_EQ((*kept)["reason"], "user");
}

TEST_F(ServiceTest, KillDashNineLosesNoRecordAndWorkersAreReadoptedOrMarked) {
  const std::string survivor = create("pete", "cpu");
  const std::string long_job = job("pete", survivor, {"sh", "-c", "sleep 1.5; echo finished; exit 5"});
  const std::string doomed = create("pete", "gpu:t4");
  job("pete", doomed, {"sleep", "30"});  // the worker starts with the first job
  const int doomed_worker = worker_pid("pete", doomed);
  ASSERT_GT(doomed_worker, 0);
  const std::string ended = create("alice", "cpu");
  call("DELETE", "alice", "/v1/runtimes/" + ended);
  stop_daemon(SIGKILL);
  kill(-doomed_worker, SIGKILL);  // this runtime's worker dies while the service is down ...
  // ... which under load takes a moment: dead (or a zombie) before the service looks again.
  ASSERT_TRUE(wait_until([&] { return !accel::runtime::LocalExecutor::running(doomed_worker, 0); }, 5));
  start_daemon();
  const Json all = get("root", "/v1/runtimes").body;
  EXPECT_EQ(all.size(), 2u) << all.dump() << log();  // the deleted one is gone from the API ...
  EXPECT_EQ(state("pete", survivor), "running");
  EXPECT_TRUE(has_event("pete", survivor, "adopted", "re-adopted"));
  EXPECT_EQ(runtime("pete", doomed)["state"], "terminated");
  EXPECT_EQ(runtime("pete", doomed)["reason"], "worker crashed");
  EXPECT_EQ(get("alice", "/v1/runtimes/" + ended).status, 404);
  {
    accel::runtime::Store store((dir_ / "data" / "service.db").string());  // ... and kept in the database
    const auto record = store.find("runtimes", ended);
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ((*record)["reason"], "user");
    EXPECT_EQ((*record)["deleted"], true);
  }
  ASSERT_TRUE(wait_until([&] { return job_state("pete", survivor, long_job)["state"] != "running"; }, 6));
  EXPECT_EQ(job_state("pete", survivor, long_job)["exit_code"], 5);  // the status outlived the restart
  EXPECT_EQ(output("pete", survivor, long_job), "finished\n");
}

TEST_F(ServiceTest, MetricsInPrometheusFormat) {
  create("alice", "gpu:t4");
  httplib::Client c = client();
  const auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("accel_runtimes{state=\"running\"} 1"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("accel_accelerators{type=\"t4\",simulated=\"true\",status=\"free\"} 0"), std::string::npos)
      << r->body;
}

// The web page is served without a token and drives the same v1 routes a client uses.
TEST_F(ServiceTest, TheWebPageIsServedAndUsesTheApi) {
  httplib::Client c = client();
  const auto r = c.Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  for (const char* part : {"<title>accel runtimes</title>", "/v1/runtime-types", "/v1/runtimes", "/heartbeat",
                           "/resources", "/events", "X-Accel-Next-Offset", "simulated"}) {
    EXPECT_NE(r->body.find(part), std::string::npos) << part;
  }
}

// A job's end is seen when it happens (the monitor's pidfd), not on the next tick: with a 5 s
// tick, a job that exits at once read as running for up to 5 s (2.5 s on average).
TEST_F(ServiceTest, AJobsEndIsSeenWhenItHappensNotOnTheNextTick) {
  stop_daemon(SIGTERM);
  Json config = Json::parse(std::ifstream(dir_ / "config.json"));
  config["tick_s"] = 5.0;
  std::ofstream(dir_ / "config.json") << config.dump();
  start_daemon();
  const std::string id = create("paula", "cpu");
  std::vector<double> seen_ms;
  for (int i = 0; i < 3; ++i) {
    const std::string quick = job("paula", id, {"true"});
    const auto started = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until([&] { return job_state("paula", id, quick)["state"] == "exited"; }, 6));
    seen_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
    EXPECT_EQ(job_state("paula", id, quick)["exit_code"], 0);
  }
  std::sort(seen_ms.begin(), seen_ms.end());
  EXPECT_LT(seen_ms.back(), 1000.0) << "seen after " << seen_ms[0] << ", " << seen_ms[1] << ", " << seen_ms[2] << " ms";
  std::printf("job end seen after %.0f / %.0f / %.0f ms (tick 5 s)\n", seen_ms[0], seen_ms[1], seen_ms[2]);
}
