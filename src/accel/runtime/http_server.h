// An event-driven HTTP/1.1 server (Boost.Beast on Asio) for the service's REST API. Why not a
// thread per connection (cpp-httplib, before): 300 clients sending their headers a byte at a
// time held all 256 threads and stalled everyone for 27 s; a 1 GiB body was read off the socket
// to be discarded; a GET or DELETE with a body left it in the stream, where it was read as the
// next request of the keep-alive connection (schemathesis found this). Here connections are
// sockets on a few event loops (a thread each): a slow client costs a little memory, not a
// thread. Each request's headers must arrive within a deadline, a body larger than the limit is
// refused (413) from its Content-Length before a byte of it is read, and every request's body is
// read whole (or the connection closed) before the next request on the connection. Handlers,
// which may block (a commit, starting a process), run on a pool of worker threads; an
// AsyncHandler runs on the loop and answers later, from any thread, without a worker.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace accel::runtime::http {

struct Request {
  std::string method, path, body;                  // path: percent-decoded, without the query
  std::map<std::string, std::string> headers;      // names in lower case
  std::multimap<std::string, std::string> params;  // the query, decoded
  std::vector<std::string> matches;                // [0] the path, [1...] the route's {name} segments

  bool has_header(const std::string& name) const;
  std::string get_header_value(const std::string& name) const;  // "" when absent
  bool has_param(const std::string& name) const { return params.count(name) > 0; }
  std::string get_param_value(const std::string& name) const;  // the first; "" when absent
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type = "text/plain";

  void set_header(const std::string& name, const std::string& value);
  void set_content(std::string content, const std::string& type) {
    body = std::move(content);
    content_type = type;
  }
};

using Handler = std::function<void(const Request&, Response&)>;
// The answer to a request whose work goes on elsewhere (an AsyncHandler's): call it once, from
// any thread. `fill` runs on the connection's event-loop thread and makes the answer there (an
// exception from it answers 500).
using Reply = std::function<void(std::function<void(Response&)> fill)>;
// Runs on the event loop itself: it must not block. It hands blocking work to Server::offload
// or queues it elsewhere, and answers through `reply`.
using AsyncHandler = std::function<void(const std::shared_ptr<const Request>&, const Reply& reply)>;
// The body of an answer the server makes itself (404 no route, 405, 408, 411, 413, 414, 431,
// 400 malformed, 500 a handler's escaped exception), given the status and what was wrong.
using ErrorBody = std::function<std::string(int status, const std::string& why)>;

struct ServerLimits {
  std::size_t max_header_bytes = 16 * 1024;  // request line and headers
  std::size_t max_body_bytes = 1 << 20;
  double header_timeout_s = 10;  // from the end of the last answer (or the connection) to a whole header
  double body_timeout_s = 30;
  int handler_threads = 64;  // Handlers (and offloaded work) running at once; they may block
  // Event loops, a thread each (reads, parsing, routing, writes); connections are dealt to them in
  // turn. One was saturated at 100 clients on a 2-core Zen 3 (a whole core, 37% of it in the
  // kernel); two gave 10-20% more runtimes/s and a lower p99 (docs/performance.md).
  int loop_threads = 2;
  std::size_t max_connections = 20000;
  // Open connections from one client address: one host cannot take all of max_connections.
  // Beyond it a new connection gets a 503 and is closed.
  std::size_t max_connections_per_address = 1000;
};

class Server {
 public:
  explicit Server(ServerLimits limits = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // `pattern`: a path as OpenAPI writes it, "/v1/runtimes/{id}/jobs": a {name} segment matches one
  // segment of letters, digits, '_' and '-', and becomes Request::matches[1...] in order.
  // Request::matches. GET routes answer HEAD too.
  void route(const std::string& method, const std::string& pattern, Handler handler);
  void route(const std::string& method, const std::string& pattern, AsyncHandler handler);
  // Runs `work` on the worker pool (where Handlers run): for an AsyncHandler's blocking part.
  void offload(std::function<void()> work);
  // Stops the loops and waits for the work on the worker pool; nothing new starts there. The
  // loops' threads are serve()'s: call this from serve()'s thread, or after serve() returned.
  void stop_and_wait();
  void on_error(ErrorBody body);
  // Binds host:port (port 0 picks a free one) and returns the port, or -1.
  int bind(const std::string& host, int port);
  void serve();  // answers requests until stop()
  void stop();

  struct State;  // defined in http_server.cpp

 private:
  std::shared_ptr<State> state_;
};

}  // namespace accel::runtime::http
