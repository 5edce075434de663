// The API's OpenAPI 3.1 description, served at GET /v1/openapi.json. Its source is
// docs/openapi.json, compiled in at build time (openapi.cpp.in): one document for the docs, the
// live service and schemathesis (scripts/api-check.sh).
#pragma once

namespace accel::runtime {

const char* openapi_json();

}  // namespace accel::runtime
