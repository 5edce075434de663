// Raw HTTP over a loopback socket, for tests that send what a well-behaved client library
// would not (odd methods, a GET with a body, a body that never ends) and read the bytes back.
// No curl: a fresh Debian root has none.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace accel::testing {

// `from`: the client's address, another loopback one such as "127.0.0.2" (nullptr: any).
inline int connect_to(int port, const char* from = nullptr) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (from) {
    sockaddr_in source{};
    source.sin_family = AF_INET;
    inet_pton(AF_INET, from, &source.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) {
      close(fd);
      return -1;
    }
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline bool send_all(int fd, const std::string& bytes) {
  return send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

// Sends `request` on a new connection and returns everything the server sends back until it
// closes or is quiet for `quiet_s`.
inline std::string exchange(int port, const std::string& request, double quiet_s = 0.5, const char* from = nullptr) {
  const int fd = connect_to(port, from);
  if (fd < 0) return "";
  const timeval quiet{static_cast<time_t>(quiet_s),
                      static_cast<suseconds_t>((quiet_s - static_cast<time_t>(quiet_s)) * 1e6)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &quiet, sizeof quiet);
  send_all(fd, request);
  std::string answer;
  char buffer[4096];
  for (ssize_t n; (n = recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, static_cast<std::size_t>(n));
  close(fd);
  return answer;
}

}  // namespace accel::testing
