// The service's web page (GET /): runtime types with availability, your runtimes with restart,
// change type and delete, a command box with streamed output, events and a resource monitor;
// simulated accelerators are marked. It talks to the v1 API with the token the user enters.
#pragma once

namespace accel::runtime {

const char* web_page_html();

}  // namespace accel::runtime
