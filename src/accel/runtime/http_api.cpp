#include "accel/runtime/http_api.h"

#include "accel/runtime/http_server.h"
#include "accel/runtime/openapi.h"
#include "accel/runtime/web_page.h"

#include <cstdio>
#include <functional>
#include <optional>
#include <utility>

namespace accel::runtime {
namespace {

void send_json(http::Response& res, int status, const Json& body) {
  res.status = status;
  // Compact (the CLI pretty-prints); bytes that are not UTF-8 (echoed from a request) become
  // U+FFFD instead of an exception that would answer 500.
  res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n", "application/json");
}

Json parse_body(const http::Request& req) {
  if (req.body.empty()) return Json::object();
  try {
    return Json::parse(req.body);
  } catch (const Json::exception& e) {
    throw ApiError(400, std::string("malformed JSON in the request body: ") + e.what());
  }
}

// An error message as the client gets it: at most 1 KiB, so an echoed input (a 100 kB runtime
// type, say) is not sent back whole.
std::string clipped(const std::string& message) {
  constexpr std::size_t kMax = 1024;
  if (message.size() <= kMax) return message;
  return message.substr(0, kMax - 64) + "... (" + std::to_string(message.size()) + " bytes in all)";
}

// A query parameter that must be a count: digits only (stoull would take "-1", wrapping to
// 2^64 - 1, and read "1e3" as 1), at most 15 of them, and at most `max`.
std::size_t count_param(const http::Request& req, const char* name, std::size_t fallback, std::size_t max) {
  if (!req.has_param(name)) return fallback;
  const std::string given = req.get_param_value(name);
  const bool digits =
      !given.empty() && given.size() <= 15 && given.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoull(given) > max) {
    throw ApiError(400, std::string("parameter '") + name + "' must be an integer from 0 to " + std::to_string(max));
  }
  return std::stoull(given);
}

// ?offset=N&limit=M over a JSON array (without `limit`, everything from `offset` on):
// X-Accel-Total-Count says how many there are, X-Accel-Next-Offset where the next page starts
// when one follows.
constexpr std::size_t kMaxPage = 1000;
Json page(const Json& all, const http::Request& req, http::Response& res) {
  const std::size_t offset = count_param(req, "offset", 0, 999'999'999'999'999);
  const std::size_t limit = count_param(req, "limit", kMaxPage, kMaxPage);
  const bool paged = req.has_param("limit") || req.has_param("offset");
  Json out = Json::array();
  const std::size_t end = paged ? std::min(all.size(), offset + limit) : all.size();
  for (std::size_t i = paged ? offset : 0; i < end; ++i) out.push_back(all[i]);
  res.set_header("X-Accel-Total-Count", std::to_string(all.size()));
  if (end < all.size()) res.set_header("X-Accel-Next-Offset", std::to_string(end));
  return out;
}

using Handler = std::function<void(const User&, const http::Request&, http::Response&)>;

// Bodies up to this size are parsed on the event loop; a larger one (up to the 1 MiB limit,
// milliseconds of parsing) goes to a worker so that it holds up no other connection.
constexpr std::size_t kParseOnLoopBytes = 4096;

// Routes whose changes must be stored before they are answered: all but reads and heartbeats (a
// heartbeat only moves an idle clock; refusing it while the database is down would let the
// idle timeout end runtimes whose users are there).
bool must_store(const http::Request& req) {
  return req.method != "GET" && req.path.find("/heartbeat") == std::string::npos;
}

// Why the service cannot store changes, as a client may read it (the log has SQLite's words).
std::string storage_trouble(const std::string& failure) {
  if (failure.find("full") != std::string::npos) return "its disk is full";
  if (failure.find("locked") != std::string::npos || failure.find("busy") != std::string::npos)
    return "its database is locked by another writer";
  return "its database cannot be written";
}

// A read that needed the database while commits fail (a record no longer in memory): 503 that
// says so, not the message for a change that was kept.
[[noreturn]] void rethrow_as_read_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const DatabaseUnavailable& e) {
    throw ApiError(503, "the service cannot read its database right now (" + storage_trouble(e.what()) +
                            "); retry in a few seconds");
  }
}

// A state route's result as its answer: JSON as it is, a runtime record described (create and
// delete return records so that their JSON is built off the combiner).
Json answer_json(const RuntimeService&, Json json) { return json; }
Json answer_json(const RuntimeService& service, const Runtime& rt) { return service.describe(rt); }

}  // namespace

HttpApi::HttpApi(RuntimeService& service)
    : service_(service),
      server_(std::make_unique<http::Server>([&service] {
        http::ServerLimits limits;
        limits.max_connections_per_address = static_cast<std::size_t>(service.config().max_connections_per_address);
        return limits;
      }())),
      combiner_(std::make_unique<Combiner>([&service] { service.store().sync(); })) {
  http::Server& s = *server_;
  // Answers the server makes itself (no route, 405, 413, 431, a malformed request, an
  // exception that escaped a handler) are JSON like every other error, with no internal message.
  s.on_error([](int status, const std::string& why) {
    return Json{{"error", why}, {"status", status}}.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  });
  // Every route but /metrics and /v1/health needs a token; errors become JSON with the status.
  const auto answer_errors = [](http::Response& res, const std::function<void()>& work) {
    try {
      work();
    } catch (const DatabaseUnavailable& e) {
      // The request's change took effect in memory and stays queued for the database.
      res.headers.clear();  // a route's paging headers describe an answer that is not sent
      res.set_header("Retry-After", "1");
      send_json(res, 503,
                {{"error", "the service could not store this change yet (" + storage_trouble(e.what()) +
                               "); it took effect and is written when the database recovers: read the resource "
                               "before retrying"},
                 {"status", 503}});
    } catch (const ApiError& e) {
      send_json(res, e.status(), {{"error", clipped(e.message())}, {"status", e.status()}});
    } catch (const std::exception& e) {
      // The message goes to the service's log, not to the client: it may name files or SQL.
      std::fprintf(stderr, "accel serve: internal error: %s\n", e.what());
      send_json(res, 500, {{"error", "internal error (the service's log has the details)"}, {"status", 500}});
    }
  };
  // While commits fail, changes are refused before they happen (503, nothing changed); reads
  // answer from memory. The ticker and every request retry the commit on a backoff, and the
  // first that succeeds writes everything queued (Store::sync): no restart needed.
  const auto refuse_changes_while_failing = [this](const http::Request& req) {
    if (!must_store(req)) return;
    const std::string failure = service_.store().failure();
    if (failure.empty()) return;
    throw ApiError(503, "the service cannot store changes right now (" + storage_trouble(failure) +
                            "); nothing was changed; retry in a few seconds");
  };
  const auto stored = [this](const http::Request& req, const std::function<void()>& commit) {
    try {
      commit();  // answer only once the changes behind the answer are committed
    } catch (const DatabaseUnavailable&) {
      if (must_store(req)) throw;
    }
  };
  // Routes that start processes or read /proc and files run outside the combiner, then commit.
  const auto authed = [this, answer_errors, refuse_changes_while_failing, stored](Handler handler) {
    return [this, handler, answer_errors, refuse_changes_while_failing, stored](const http::Request& req,
                                                                                http::Response& res) {
      answer_errors(res, [&] {
        const User user = service_.authenticate(req.get_header_value("Authorization"));
        refuse_changes_while_failing(req);
        handler(user, req, res);
        stored(req, [&] { service_.store().sync(); });
      });
    };
  };
  // The rest go through the combiner (combiner.h): in arrival order, one commit per batch. They
  // start on the event loop when that cannot block (a token seen lately, a small body), else on
  // a worker; the combiner's thread runs and commits them; the answer is printed back on the loop.
  const auto combined = [this, answer_errors, refuse_changes_while_failing](int status, auto op) {
    using Result = decltype(op(User{}, http::Request{}, Json{}));
    // After the commit: the outcome as an answer. A read or a heartbeat whose batch could not be
    // committed still answers (it changed nothing that must be stored); an operation that failed
    // (no result) answers its own error, whatever the route.
    const auto answer = [this, status, answer_errors](const std::shared_ptr<const http::Request>& req,
                                                      const std::shared_ptr<std::optional<Result>>& result,
                                                      std::exception_ptr error) {
      return [this, status, answer_errors, req, result, error](http::Response& res) {
        answer_errors(res, [&] {
          if (error && !result->has_value() && !must_store(*req)) rethrow_as_read_error(error);
          if (error && (!result->has_value() || must_store(*req))) std::rethrow_exception(error);
          send_json(res, status, answer_json(service_, **result));
        });
      };
    };
    const auto start = [this, op, answer, refuse_changes_while_failing](const User& user,
                                                                        const std::shared_ptr<const http::Request>& req,
                                                                        const http::Reply& reply) {
      refuse_changes_while_failing(*req);
      auto body = std::make_shared<const Json>(parse_body(*req));
      auto result = std::make_shared<std::optional<Result>>();
      combiner_->submit([this, op, user, req, body, result] { result->emplace(op(user, *req, *body)); },
                        [answer, req, result, reply](std::exception_ptr error) { reply(answer(req, result, error)); });
    };
    const auto fail = [answer_errors](const http::Reply& reply, std::exception_ptr error) {
      reply(
          [answer_errors, error](http::Response& res) { answer_errors(res, [&] { std::rethrow_exception(error); }); });
    };
    return http::AsyncHandler(
        [this, start, fail](const std::shared_ptr<const http::Request>& req, const http::Reply& reply) {
          try {
            const std::string header = req->get_header_value("Authorization");
            if (req->body.size() <= kParseOnLoopBytes) {
              if (auto user = service_.known_user(header)) return start(*user, req, reply);
            }
          } catch (...) {
            return fail(reply, std::current_exception());
          }
          server_->offload([this, start, fail, req, reply] {
            try {
              start(service_.authenticate(req->get_header_value("Authorization")), req, reply);
            } catch (...) {
              fail(reply, std::current_exception());
            }
          });
        });
  };
  s.route("GET", "/", [](const http::Request&, http::Response& res) {
    res.set_content(web_page_html(), "text/html; charset=utf-8");
  });
  s.route("GET", "/v1/health", [](const http::Request&, http::Response& res) {
    send_json(res, 200, {{"status", "ok"}});
  });
  s.route("GET", "/v1/openapi.json",
          [](const http::Request&, http::Response& res) { res.set_content(openapi_json(), "application/json"); });
  s.route("GET", "/metrics", [this](const http::Request&, http::Response& res) {
    res.set_content(service_.metrics(), "text/plain; version=0.0.4");
  });
  s.route("GET", "/v1/runtime-types", combined(200, [this](const User& u, const http::Request&, const Json&) {
            return service_.runtime_types(u);
          }));
  s.route("POST", "/v1/runtimes", combined(201, [this](const User& u, const http::Request&, const Json& body) {
            return service_.create_runtime(u, body);
          }));
  s.route("GET", "/v1/runtimes", authed([this](const User& u, const http::Request& req, http::Response& res) {
            send_json(res, 200, page(service_.list(u), req, res));
          }));
  s.route("GET", "/v1/runtimes/{id}", combined(200, [this](const User& u, const http::Request& req, const Json&) {
            return service_.get(u, req.matches[1]);
          }));
  s.route("DELETE", "/v1/runtimes/{id}", combined(200, [this](const User& u, const http::Request& req, const Json&) {
            return service_.remove_runtime(u, req.matches[1]);
          }));
  s.route("POST", "/v1/runtimes/{id}/restart",
          authed([this](const User& u, const http::Request& req, http::Response& res) {
            send_json(res, 200, service_.restart(u, req.matches[1]));
          }));
  s.route("POST", "/v1/runtimes/{id}/change-type",
          authed([this](const User& u, const http::Request& req, http::Response& res) {
            send_json(res, 200, service_.change_type(u, req.matches[1], parse_body(req)));
          }));
  s.route("POST", "/v1/runtimes/{id}/heartbeat",
          combined(200, [this](const User& u, const http::Request& req, const Json&) {
            return service_.heartbeat(u, req.matches[1]);
          }));
  s.route("POST", "/v1/runtimes/{id}/jobs",
          authed([this](const User& u, const http::Request& req, http::Response& res) {
            send_json(res, 201, service_.run_job(u, req.matches[1], parse_body(req)));
          }));
  s.route("GET", "/v1/runtimes/{id}/jobs", authed([this](const User& u, const http::Request& req, http::Response& res) {
            send_json(res, 200, page(service_.jobs(u, req.matches[1]), req, res));
          }));
  s.route("GET", "/v1/runtimes/{id}/jobs/{job}",
          combined(200, [this](const User& u, const http::Request& req, const Json&) {
            return service_.job(u, req.matches[1], req.matches[2]);
          }));
  // Output from ?offset=N; X-Accel-Next-Offset and X-Accel-Job-Done tell a client how to go on.
  s.route("GET", "/v1/runtimes/{id}/jobs/{job}/output",
          authed([this](const User& u, const http::Request& req, http::Response& res) {
            const std::size_t offset = count_param(req, "offset", 0, 999'999'999'999'999);
            bool done = false;
            const std::string text = service_.job_output(u, req.matches[1], req.matches[2], offset, done);
            res.set_header("X-Accel-Next-Offset", std::to_string(offset + text.size()));
            res.set_header("X-Accel-Job-Done", done ? "true" : "false");
            res.set_content(text, "text/plain");
          }));
  s.route("GET", "/v1/runtimes/{id}/resources",
          authed([this](const User& u, const http::Request& req, http::Response& res) {
            send_json(res, 200, service_.resources(u, req.matches[1]));
          }));
  s.route("GET", "/v1/runtimes/{id}/events",
          authed([this](const User& u, const http::Request& req, http::Response& res) {
            send_json(res, 200, service_.events(u, req.matches[1]));
          }));
}

// The server's workers first (they may queue operations), then the combiner (its answers go to
// the server's loop, stopped by then: they are dropped with the connections), then the server.
HttpApi::~HttpApi() {
  server_->stop_and_wait();
  combiner_.reset();  // serve() may have done both already
  server_.reset();
}

int HttpApi::bind(const std::string& host, int port) { return server_->bind(host, port); }

// Returns once nothing more can change: the loops stopped, the workers finished, and what they
// queued ran and was committed (else a create that arrived with the signal could start a
// runtime after the service's shutdown ended the others).
void HttpApi::serve() {
  server_->serve();
  server_->stop_and_wait();
  combiner_.reset();
}
void HttpApi::stop() { server_->stop(); }

}  // namespace accel::runtime
