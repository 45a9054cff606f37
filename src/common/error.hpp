// The one error type of provdb. Every layer reports failure by throwing
// provdb::Error; a code says what kind of failure it is, so that the server
// can carry it over the wire and the client can rethrow the same error.
// Messages name what failed, with which input, and what to do about it.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace provdb {

enum class ErrorCode : int {
  kInvalidArgument = 1,  // a bad name, option or parameter from the caller
  kBadDocument = 2,      // a document that is not a JSON object, or too large
  kNotFound = 3,         // an unknown collection, database or record
  kAlreadyExists = 4,    // creating something that is there
  kQueryRefused = 5,     // a query that would write, attach, or is not one statement
  kQueryLimit = 6,       // a query that ran past its time or row limit
  kQuerySyntax = 7,      // a query SQLite could not compile
  kStorage = 8,          // the database file could not be read or written
  kTimeout = 9,          // a peer did not answer in time
  kProtocol = 10,        // a malformed or unexpected message
  kUnavailable = 11,     // no server, or a server that is stopping
  kInternal = 12,        // a broken invariant: a bug
};

// A short lowercase name for the code, used in logs and on the wire.
std::string_view ErrorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}

  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace provdb
