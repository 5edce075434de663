#include "accel/runtime/http_server.h"

#include <pthread.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace accel::runtime::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// %XX decoded (and '+' as a space in a query); a malformed escape stays as it is.
std::string decode(const std::string& text, bool query) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(query && text[i] == '+' ? ' ' : text[i]);
    }
  }
  return out;
}

// A route's path, split at '/' into literal segments and {name} segments that capture. Not a
// regular expression: std::regex took 6% of the event loop's time, matching every route in turn.
class PathTemplate {
 public:
  using Segments = std::vector<std::string_view>;

  explicit PathTemplate(const std::string& pattern) {
    for (const std::string_view segment : split(pattern))
      segments_.push_back(
          {std::string(segment), segment.size() > 2 && segment.front() == '{' && segment.back() == '}'});
  }

  // A path split at '/' (views into it): split once per request, matched against every route.
  static Segments split(std::string_view path) {
    Segments parts;
    std::size_t start = 0;
    for (std::size_t slash; (slash = path.find('/', start)) != std::string_view::npos; start = slash + 1)
      parts.push_back(path.substr(start, slash - start));
    parts.push_back(path.substr(start));
    return parts;
  }

  // The captured segments, in order, when the path matches.
  bool match(const Segments& parts, std::vector<std::string>& captures) const {
    if (parts.size() != segments_.size()) return false;
    captures.clear();
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (!segments_[i].captures) {
        if (parts[i] != segments_[i].text) return false;
        continue;
      }
      const bool word = !parts[i].empty() && std::all_of(parts[i].begin(), parts[i].end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      });
      if (!word) return false;
      captures.emplace_back(parts[i]);
    }
    return true;
  }

 private:
  struct Segment {
    std::string text;
    bool captures;
  };
  std::vector<Segment> segments_;
};

struct Route {
  std::string method;
  PathTemplate pattern;
  Handler handler;  // one of the two
  AsyncHandler on_loop;
};

}  // namespace

bool Request::has_header(const std::string& name) const { return headers.count(lower(name)) > 0; }

std::string Request::get_header_value(const std::string& name) const {
  const auto it = headers.find(lower(name));
  return it == headers.end() ? "" : it->second;
}

std::string Request::get_param_value(const std::string& name) const {
  const auto it = params.find(name);
  return it == params.end() ? "" : it->second;
}

void Response::set_header(const std::string& name, const std::string& value) {
  for (auto& [key, existing] : headers) {
    if (lower(key) == lower(name)) {
      existing = value;
      return;
    }
  }
  headers.emplace_back(name, value);
}

// Members in this order: the sessions that the loops still hold are destroyed with them and
// count themselves out of `connections`, which must outlive the loops.
struct Server::State {
  ServerLimits limits;
  std::vector<Route> routes;
  ErrorBody error_body = [](int status, const std::string& why) {
    return "{\"error\": \"" + why + "\", \"status\": " + std::to_string(status) + "}";
  };
  std::atomic<std::size_t> connections{0};
  std::mutex by_address_mutex;
  std::unordered_map<std::string, std::size_t> by_address;  // open connections per client address
  // One event loop per thread, each with the connections it was given (round robin): a shared
  // loop ran most handlers on one of its two threads (one at 100% of a core, the other at 40%)
  // and took a lock for every operation.
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::size_t next_loop = 0;  // the acceptor's handler only
  tcp::acceptor acceptor;
  asio::thread_pool workers;

  explicit State(ServerLimits l)
      : limits(l),
        loops(make_loops(l.loop_threads)),
        acceptor(*loops[0]),
        workers(static_cast<std::size_t>(l.handler_threads)) {}
  static std::vector<std::unique_ptr<asio::io_context>> make_loops(int count) {
    std::vector<std::unique_ptr<asio::io_context>> made;
    for (int i = 0; i < std::max(count, 1); ++i) made.push_back(std::make_unique<asio::io_context>(1));
    return made;
  }
  void accept();
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server::State& server, tcp::socket&& socket, std::string address)
      : server_(server), stream_(std::move(socket)), address_(std::move(address)) {
    ++server_.connections;
  }
  ~Session() {
    --server_.connections;
    std::lock_guard<std::mutex> lock(server_.by_address_mutex);
    if (auto it = server_.by_address.find(address_); it != server_.by_address.end() && --it->second == 0)
      server_.by_address.erase(it);
  }

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
  }

 private:
  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.limits.max_header_bytes));
    parser_->body_limit(server_.limits.max_body_bytes);
    // One deadline for the whole header: a client that sends it a byte at a time is cut off
    // when it runs out, however steadily it sends.
    stream_.expires_after(seconds(server_.limits.header_timeout_s));
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
      return close();
    if (ec == bhttp::error::header_limit) return refuse(431, "request headers too large (at most 16 KiB)");
    if (ec == bhttp::error::body_limit) return refuse_large_body();  // its Content-Length, checked with the header
    if (ec) return refuse(400, "malformed request: " + ec.message());
    const auto& head = parser_->get();
    if (head.target().size() > 8192) return refuse(414, "request URI too long (at most 8 KiB)");
    // Too large: refused from its length, before a byte of it is read.
    if (const auto length = parser_->content_length(); length && *length > server_.limits.max_body_bytes)
      return refuse_large_body();
    if (beast::iequals(head[bhttp::field::expect], "100-continue") && !parser_->is_done()) {
      auto go_on = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, 11);
      return bhttp::async_write(stream_, *go_on, [self = shared_from_this(), go_on](beast::error_code e, std::size_t) {
        if (e) return self->close();
        self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return dispatch();
    stream_.expires_after(seconds(server_.limits.body_timeout_s));
    bhttp::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec == bhttp::error::body_limit) return self->refuse_large_body();  // a chunked body that grew too long
      if (ec == beast::error::timeout || ec == bhttp::error::end_of_stream || ec == asio::error::eof)
        return self->close();
      if (ec) return self->refuse(400, "malformed request body: " + ec.message());
      self->dispatch();
    });
  }

  void dispatch() {
    stream_.expires_never();
    bhttp::request<bhttp::string_body> message = parser_->release();
    keep_alive_ = message.keep_alive();
    head_ = message.method() == bhttp::verb::head;
    auto request = std::make_shared<Request>();
    request->method = head_ ? "GET" : std::string(message.method_string());
    const std::string target(message.target());
    const auto question = target.find('?');
    request->path = decode(target.substr(0, question), false);
    if (question != std::string::npos) {
      const std::string query = target.substr(question + 1);
      for (std::size_t start = 0; start <= query.size();) {
        const std::size_t end = std::min(query.find('&', start), query.size());
        const std::string pair = query.substr(start, end - start);
        if (!pair.empty()) {
          const auto equals = pair.find('=');
          request->params.emplace(decode(pair.substr(0, equals), true),
                                  equals == std::string::npos ? "" : decode(pair.substr(equals + 1), true));
        }
        start = end + 1;
      }
    }
    for (const auto& field : message)
      request->headers[lower(std::string(field.name_string()))] = std::string(field.value());
    request->body = std::move(message.body());

    const Route* handler = nullptr;
    std::string allowed;
    const PathTemplate::Segments parts = PathTemplate::split(request->path);
    std::vector<std::string> captures;
    for (const Route& route : server_.routes) {
      if (!route.pattern.match(parts, captures)) continue;
      if (route.method == request->method && !handler) {
        handler = &route;
        request->matches = {request->path};
        request->matches.insert(request->matches.end(), captures.begin(), captures.end());
      }
      if (allowed.find(route.method) == std::string::npos)
        allowed += (allowed.empty() ? "" : ", ") + route.method + (route.method == "GET" ? ", HEAD" : "");
    }
    if (!handler) {
      Response answer;
      answer.status = allowed.empty() ? 404 : 405;
      answer.set_content(server_.error_body(answer.status, allowed.empty() ? "no such route (docs/api.md lists them)"
                                                                           : "method not allowed on this route"),
                         "application/json");
      if (!allowed.empty()) answer.set_header("Allow", allowed);
      return write(std::move(answer));
    }
    if (handler->on_loop) {
      auto self = shared_from_this();
      const Reply reply = [self](std::function<void(Response&)> fill) {
        asio::post(self->stream_.get_executor(), [self, fill = std::move(fill)] {
          Response answer;
          self->fill_or_fail(answer, fill);
          self->write(std::move(answer));
        });
      };
      try {
        handler->on_loop(request, reply);
      } catch (const std::exception&) {
        write(internal_error());
      }
      return;
    }
    // Handlers may block (a commit, starting a process): on the worker pool, never on the loop.
    asio::post(server_.workers, [self = shared_from_this(), request, handler] {
      Response answer;
      self->fill_or_fail(answer, [&](Response& res) { handler->handler(*request, res); });
      asio::post(self->stream_.get_executor(),
                 [self, answer = std::move(answer)]() mutable { self->write(std::move(answer)); });
    });
  }

  // An exception that escaped a handler is answered 500 without its message (it may name
  // files or SQL).
  void fill_or_fail(Response& answer, const std::function<void(Response&)>& fill) {
    try {
      fill(answer);
    } catch (const std::exception&) {
      answer = internal_error();
    }
  }

  Response internal_error() {
    Response answer;
    answer.status = 500;
    answer.set_content(server_.error_body(500, "internal error"), "application/json");
    return answer;
  }

  void refuse_large_body() {
    refuse(413, "request body too large (at most " + std::to_string(server_.limits.max_body_bytes >> 10) + " KiB)");
  }

  void refuse(int status, const std::string& why) {
    keep_alive_ = false;  // what is left of the request is unread: the connection ends with the answer
    linger_ = true;
    head_ = false;
    Response answer;
    answer.status = status;
    answer.set_content(server_.error_body(status, why), "application/json");
    write(std::move(answer));
  }

  void write(Response answer) {
    answer_ = {};
    answer_.version(11);
    answer_.result(static_cast<unsigned>(answer.status));
    for (const auto& [name, value] : answer.headers) answer_.set(name, value);
    answer_.set(bhttp::field::content_type, answer.content_type);
    answer_.keep_alive(keep_alive_);
    const std::size_t length = answer.body.size();
    if (!head_) answer_.body() = std::move(answer.body);
    answer_.content_length(length);
    stream_.expires_after(seconds(server_.limits.body_timeout_s));  // a client that never reads its answer
    bhttp::async_write(stream_, answer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec && self->linger_) return self->linger();
      if (ec || !self->keep_alive_) return self->close();
      self->read_header();
    });
  }

  // After refusing a request whose body is still coming: stop sending, and read (and drop) what
  // the client still sends for a while, so that a client which writes its whole body before
  // reading gets the answer instead of a reset. Bounded: 2 s and 8 MiB, then the connection ends.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    drain();
  }

  void drain() {
    stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > (8u << 20)) return self->close();
      self->drain();
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  Server::State& server_;
  beast::tcp_stream stream_;
  std::string address_;  // the client's, counted in by_address while the session lives
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> answer_;  // alive while it is written
  bool keep_alive_ = false;
  bool head_ = false;
  bool linger_ = false;
  std::size_t drained_ = 0;
  std::array<char, 16384> scratch_{};
};

}  // namespace

void Server::State::accept() {
  asio::io_context& loop = *loops[next_loop++ % loops.size()];
  acceptor.async_accept(loop, [this](beast::error_code ec, tcp::socket socket) {
    if (ec && acceptor.is_open()) {
      // Out of descriptors (EMFILE) and the like: accepting again at once would spin the loop.
      auto pause = std::make_shared<asio::steady_timer>(*loops[0], std::chrono::milliseconds(50));
      pause->async_wait([this, pause](beast::error_code) {
        if (acceptor.is_open()) accept();
      });
      return;
    }
    if (!ec) {
      beast::error_code ignored;
      const std::string address = socket.remote_endpoint(ignored).address().to_string();
      bool crowded = false;  // this address holds its share already
      {
        std::lock_guard<std::mutex> lock(by_address_mutex);
        std::size_t& open = by_address[address];
        crowded = open >= limits.max_connections_per_address;
        if (!crowded) ++open;
      }
      if (connections.load() >= limits.max_connections) {
        if (!crowded) {
          std::lock_guard<std::mutex> lock(by_address_mutex);
          if (--by_address[address] == 0) by_address.erase(address);
        }
        socket.close(ignored);  // over the limit: refused at once rather than queued
      } else if (crowded) {
        // Said, not just closed: the client learns why. A fresh socket's send buffer takes
        // these few bytes at once, so the loop never waits on it.
        const std::string body = error_body(503, "too many open connections from " + address + " (at most " +
                                                     std::to_string(limits.max_connections_per_address) +
                                                     "); close some, or reuse them with keep-alive");
        const std::string answer =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Connection: close\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
        socket.non_blocking(true, ignored);
        socket.write_some(asio::buffer(answer), ignored);
        socket.shutdown(tcp::socket::shutdown_send, ignored);
        socket.close(ignored);
      } else {
        socket.set_option(tcp::no_delay(true), ec);  // answers go out at once (no Nagle + delayed-ACK wait)
        std::make_shared<Session>(*this, std::move(socket), address)->start();
      }
    }
    if (acceptor.is_open()) accept();
  });
}

Server::Server(ServerLimits limits) : state_(std::make_shared<State>(limits)) {}

Server::~Server() { stop_and_wait(); }

void Server::route(const std::string& method, const std::string& pattern, Handler handler) {
  state_->routes.push_back({method, PathTemplate(pattern), std::move(handler), {}});
}

void Server::route(const std::string& method, const std::string& pattern, AsyncHandler handler) {
  state_->routes.push_back({method, PathTemplate(pattern), {}, std::move(handler)});
}

void Server::offload(std::function<void()> work) { asio::post(state_->workers, std::move(work)); }

void Server::stop_and_wait() {
  stop();
  state_->workers.join();
}

void Server::on_error(ErrorBody body) { state_->error_body = std::move(body); }

int Server::bind(const std::string& host, int port) {
  beast::error_code ec;
  const auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return -1;
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  tcp::acceptor& acceptor = state_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(1024, ec);  // 100 clients connecting at once lost SYNs with a backlog of 5
  if (ec) {
    acceptor.close(ec);
    return -1;
  }
  return acceptor.local_endpoint().port();
}

void Server::serve() {
  // Connections are descriptors: the soft limit (1,024 by default) up to the hard one.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  state_->accept();
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;  // until stop()
  for (auto& loop : state_->loops) keep_running.push_back(asio::make_work_guard(*loop));
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < state_->loops.size(); ++i)
    threads.emplace_back([this, i] {
      pthread_setname_np(pthread_self(), ("accel-http-" + std::to_string(i)).c_str());  // named in top -H and perf
      state_->loops[i]->run();
    });
  state_->loops[0]->run();
  for (std::thread& thread : threads) thread.join();
}

void Server::stop() {
  for (auto& loop : state_->loops) loop->stop();
}

}  // namespace accel::runtime::http
