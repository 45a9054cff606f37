// The code of the provdb::Error a call throws, for tests that expect one
// kind of failure; kInternal when the call throws nothing.
#pragma once

#include "common/error.hpp"

namespace provdb::testing {

template <typename F>
ErrorCode CodeOf(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

}  // namespace provdb::testing
