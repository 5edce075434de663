// The REST/JSON API (v1, docs/api.md, docs/openapi.json) over a RuntimeService, on the
// event-driven server of http_server.h.
#pragma once

#include <memory>
#include <string>

#include "accel/runtime/combiner.h"
#include "accel/runtime/runtime_service.h"

namespace accel::runtime::http {
class Server;
}

namespace accel::runtime {

class HttpApi {
 public:
  explicit HttpApi(RuntimeService& service);
  ~HttpApi();
  // Binds host:port (port 0 picks a free one) and returns the port; then serve() blocks.
  int bind(const std::string& host, int port);
  void serve();
  void stop();

 private:
  RuntimeService& service_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<Combiner> combiner_;
};

}  // namespace accel::runtime
