// The runtime service's client: accel runtime create|ls|show|restart|change-type|delete|
// resources|events, and accel run ID -- CMD. Server and token come from --server/--token, then
// ACCEL_SERVER/ACCEL_TOKEN, then ~/.config/accel/client.json ({"server": ..., "token": ...}).
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "accel/core/error.h"
#include "commands.h"

namespace accel::cli {
namespace {

using Json = nlohmann::json;

struct ClientOptions {
  std::string server;
  std::string token;
};

ClientOptions resolve(ClientOptions o) {
  Json file = Json::object();  // no file: nothing from it
  if (const char* home = std::getenv("HOME")) {
    const std::string path = std::string(home) + "/.config/accel/client.json";
    std::ifstream in(path);
    if (in) file = Json::parse(in, nullptr, false);
    if (!file.is_object()) {
      throw ValueError(path +
                       " is not a JSON object; write it as {\"server\": \"http://HOST:PORT\", \"token\": \"acc_...\"}");
    }
  }
  if (o.server.empty()) o.server = std::getenv("ACCEL_SERVER") ? std::getenv("ACCEL_SERVER") : file.value("server", "");
  if (o.token.empty()) o.token = std::getenv("ACCEL_TOKEN") ? std::getenv("ACCEL_TOKEN") : file.value("token", "");
  if (o.server.empty()) o.server = "http://127.0.0.1:8470";
  if (o.token.empty())
    throw ValueError("no token: pass --token, set ACCEL_TOKEN, or put it in ~/.config/accel/client.json");
  return o;
}

// One API call; a non-2xx answer becomes an accel::Error with the service's message.
struct Api {
  ClientOptions options;
  httplib::Client client;
  explicit Api(const ClientOptions& o) : options(resolve(o)), client(options.server) {
    client.set_bearer_token_auth(options.token);
    client.set_tcp_nodelay(true);
    client.set_connection_timeout(5);
    client.set_read_timeout(60);
  }
  httplib::Result check(httplib::Result r, const std::string& what) {
    if (!r) throw Error(what + ": cannot reach " + options.server + " (" + httplib::to_string(r.error()) + ")");
    if (r->status >= 300) {
      const Json body = Json::parse(r->body, nullptr, false);
      throw Error(what + ": " + std::to_string(r->status) + " " +
                  (body.is_object() && body.contains("error") ? body["error"].get<std::string>() : r->body));
    }
    return r;
  }
  Json get(const std::string& path) { return Json::parse(check(client.Get(path), "GET " + path)->body); }
  Json post(const std::string& path, const Json& body) {
    return Json::parse(check(client.Post(path, body.dump(), "application/json"), "POST " + path)->body);
  }
  Json del(const std::string& path) { return Json::parse(check(client.Delete(path), "DELETE " + path)->body); }
};

std::string describe(const Json& rt) {
  std::string accelerator = rt.value("accelerator_name", rt.value("type", ""));
  if (accelerator.empty()) accelerator = rt.value("type", "");
  std::string out = rt["id"].get<std::string>() + "  " + rt["requested_type"].get<std::string>() + " -> " +
                    accelerator + "  " + rt["state"].get<std::string>();
  if (!rt["reason"].get<std::string>().empty()) out += " (" + rt["reason"].get<std::string>() + ")";
  return out;
}

}  // namespace

void add_runtime_commands(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ClientOptions>();
  const auto common = [o](CLI::App* cmd) {
    cmd->add_option("--server", o->server, "Service URL (default $ACCEL_SERVER or http://127.0.0.1:8470)");
    cmd->add_option("--token", o->token, "API token (default $ACCEL_TOKEN)");
  };
  CLI::App* rt = app.add_subcommand("runtime", "Runtimes on an accel service (create, ls, show, ...)");
  rt->require_subcommand(1);

  auto type = std::make_shared<std::string>("cpu");
  auto no_wait = std::make_shared<bool>(false);
  CLI::App* create = rt->add_subcommand("create", "Lease a runtime: --type cpu | gpu | gpu:t4 | tpu | ...");
  create->add_option("--type", *type, "Runtime type")->capture_default_str();
  create->add_flag("--no-wait", *no_wait, "Fail (503) instead of queueing when none is free");
  common(create);
  create->callback([=, &exit_code] {
    Api api(*o);
    const Json r = api.post("/v1/runtimes", {{"type", *type}, {"wait", !*no_wait}});
    std::printf("%s\n", describe(r).c_str());
    exit_code = 0;
  });

  CLI::App* ls = rt->add_subcommand("ls", "List your runtimes");
  common(ls);
  ls->callback([=, &exit_code] {
    Api api(*o);
    for (const Json& r : api.get("/v1/runtimes")) std::printf("%s\n", describe(r).c_str());
    exit_code = 0;
  });

  auto id = std::make_shared<std::string>();
  const auto by_id = [&, id, o, common](const char* name, const char* help,
                                        std::function<Json(Api&, const std::string&)> call) {
    CLI::App* cmd = rt->add_subcommand(name, help);
    cmd->add_option("id", *id, "Runtime id")->required();
    common(cmd);
    cmd->callback([id, o, call, &exit_code] {
      Api api(*o);
      std::printf("%s\n", call(api, *id).dump(2).c_str());
      exit_code = 0;
    });
    return cmd;
  };
  by_id("show", "Show a runtime", [](Api& api, const std::string& i) { return api.get("/v1/runtimes/" + i); });
  by_id("restart", "Restart the runtime's processes, keeping its files",
        [](Api& api, const std::string& i) { return api.post("/v1/runtimes/" + i + "/restart", Json::object()); });
  by_id("delete", "End the runtime and free everything",
        [](Api& api, const std::string& i) { return api.del("/v1/runtimes/" + i); });
  by_id("resources", "RAM, disk and accelerator memory of the runtime",
        [](Api& api, const std::string& i) { return api.get("/v1/runtimes/" + i + "/resources"); });
  by_id("events", "What happened to the runtime",
        [](Api& api, const std::string& i) { return api.get("/v1/runtimes/" + i + "/events"); });
  auto new_type = std::make_shared<std::string>();
  CLI::App* change = by_id("change-type", "Move to another accelerator type, keeping the files",
                           [new_type](Api& api, const std::string& i) {
                             return api.post("/v1/runtimes/" + i + "/change-type", {{"type", *new_type}});
                           });
  change->add_option("--type", *new_type, "The new runtime type")->required();

  auto run_id = std::make_shared<std::string>();
  auto command = std::make_shared<std::vector<std::string>>();
  CLI::App* run = app.add_subcommand("run", "Run a command in a runtime: accel run ID -- CMD ARGS...");
  run->add_option("id", *run_id, "Runtime id")->required();
  run->add_option("command", *command, "The command (after --)")->required();
  common(run);
  run->callback([=, &exit_code] {
    Api api(*o);
    const std::string runtime = "/v1/runtimes/" + *run_id;
    // A runtime still waiting for its accelerator (queued on this service, starting on a
    // cluster: Slurm decides when) is waited for, as a notebook waits while it connects.
    bool said = false;
    for (Json rt = api.get(runtime); rt["state"] == "queued" || rt["state"] == "starting"; rt = api.get(runtime)) {
      if (!said) {
        std::fprintf(stderr, "accel: runtime %s is %s; waiting for it to run\n", run_id->c_str(),
                     rt["state"].get<std::string>().c_str());
        said = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const Json job = api.post(runtime + "/jobs", {{"command", *command}});
    const std::string base = runtime + "/jobs/" + job["id"].get<std::string>();
    // Attached is active, as a Colab notebook that is open: heartbeats at a third of the idle
    // timeout keep a tier without background execution from idling out under a running job.
    const double idle_timeout = api.get(runtime).value("idle_timeout_s", 90.0);
    const auto beat_every = std::chrono::duration<double>(std::clamp(idle_timeout / 3, 0.2, 30.0));
    auto last_beat = std::chrono::steady_clock::now();
    std::size_t offset = 0;
    for (;;) {
      auto r = api.check(api.client.Get(base + "/output?offset=" + std::to_string(offset)), "GET output");
      std::fwrite(r->body.data(), 1, r->body.size(), stdout);
      std::fflush(stdout);
      offset = std::stoull(r->get_header_value("X-Accel-Next-Offset"));
      if (r->get_header_value("X-Accel-Job-Done") == "true" && r->body.empty()) break;
      if (std::chrono::steady_clock::now() - last_beat >= beat_every) {
        api.client.Post(runtime + "/heartbeat", "{}", "application/json");  // a 409 (runtime ending) is fine
        last_beat = std::chrono::steady_clock::now();
      }
      if (r->body.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const Json final_state = api.get(base);
    if (final_state["exit_code"].is_null()) {
      const Json rt = api.get(runtime);
      std::fprintf(
          stderr, "accel: the job was killed: runtime %s is %s%s\n", run_id->c_str(),
          rt["state"].get<std::string>().c_str(),
          rt["reason"].get<std::string>().empty() ? "" : (" (" + rt["reason"].get<std::string>() + ")").c_str());
    }
    exit_code = final_state["exit_code"].is_null() ? 137 : final_state["exit_code"].get<int>();
  });
}

}  // namespace accel::cli
