// A shared library that exports GetPjrtApi like a PJRT plugin but speaks an old C API version
// (FAKE_PJRT_MAJOR.FAKE_PJRT_MINOR): the tests' incompatible plugin. Never installed.
#include <pjrt_c_api.h>

extern "C" const PJRT_Api* GetPjrtApi() {
  static PJRT_Api api{};
  api.struct_size = PJRT_Api_STRUCT_SIZE;
  api.pjrt_api_version.struct_size = PJRT_Api_Version_STRUCT_SIZE;
  api.pjrt_api_version.major_version = FAKE_PJRT_MAJOR;
  api.pjrt_api_version.minor_version = FAKE_PJRT_MINOR;
  return &api;
}
