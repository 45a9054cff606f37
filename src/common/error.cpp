// Names of error codes.
#include "common/error.hpp"

namespace provdb {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kBadDocument: return "bad document";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kAlreadyExists: return "already exists";
    case ErrorCode::kQueryRefused: return "query refused";
    case ErrorCode::kQueryLimit: return "query limit";
    case ErrorCode::kQuerySyntax: return "query syntax";
    case ErrorCode::kStorage: return "storage";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kProtocol: return "protocol";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

}  // namespace provdb
