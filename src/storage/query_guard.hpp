// Running a statement written by a user on an SQLite connection without
// letting it change anything or run away: an authorizer refuses every action
// a SELECT does not need while the statement compiles, and a progress
// handler and row and byte counts stop it while it runs. Used by the
// read-only connections of storage::Database and by the merge stage of the
// query tool.
// Threads: a QueryGuard belongs to its connection and is used by the one
// thread that uses the connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace provdb::storage {

// Ends the statement it owns.
struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const;
};
using StatementPtr = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// What one run of a statement may take; passing any of them fails the run
// with kQueryLimit.
struct RunLimits {
  std::chrono::milliseconds time{10'000};
  std::size_t rows = 1'000'000;
  // Bytes of the values returned, text and blobs by their size, numbers as 8.
  std::size_t bytes = std::size_t{512} << 20;
};

class QueryGuard {
 public:
  // Installs the authorizer on `db`, which must outlive the guard; from then
  // on every statement compiled on `db` is checked, including the caller's
  // own, so install it after any setup that writes.
  explicit QueryGuard(sqlite3* db);
  ~QueryGuard();

  QueryGuard(const QueryGuard&) = delete;
  QueryGuard& operator=(const QueryGuard&) = delete;

  // Compiles `sql`, which must be exactly one read-only statement (trailing
  // blanks, ';' and comments are allowed). Throws Error(kQuerySyntax) when it
  // does not compile or is empty, and Error(kQueryRefused), saying what it
  // would have done, when it would write, attach, run a PRAGMA, or holds a
  // second statement. `what` names the statement in messages.
  StatementPtr Compile(std::string_view sql, std::string_view what);

  // Steps `stmt` to its end under `limits`, handing each row to `row`.
  // Throws Error(kQueryLimit) when a limit is passed and Error(kQuerySyntax)
  // when SQLite fails while running it.
  void Run(sqlite3_stmt* stmt, std::string_view what, const RunLimits& limits,
           const std::function<void(sqlite3_stmt*)>& row);

 private:
  static int Authorize(void* self, int action, const char* arg1, const char* arg2,
                       const char* database, const char* trigger);

  sqlite3* db_;
  // What the last refused statement would have done, for its error.
  std::string refused_;
};

}  // namespace provdb::storage
