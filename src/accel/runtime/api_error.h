// Errors the service answers with an HTTP status: 400 bad request (naming the field and the
// valid values), 401 no or unknown token, 403 not allowed by the tier, 404 no such runtime (also
// for another user's), 409 wrong state, 429 usage limit, 503 no capacity.
#pragma once

#include "accel/core/error.h"

namespace accel::runtime {

class ApiError : public Error {
 public:
  ApiError(int status, const std::string& message) : Error(message), status_(status), message_(message) {}
  int status() const { return status_; }
  // The whole message: what() stops at a NUL byte an echoed input may contain.
  const std::string& message() const { return message_; }

 private:
  int status_;
  std::string message_;
};

}  // namespace accel::runtime
