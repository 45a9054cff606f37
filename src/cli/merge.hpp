// The second stage of a cross-shard query: the per-shard results, tagged with
// their shard, are loaded into a table named "result" of an in-memory SQLite
// database, and one more SELECT runs over it (for example summing per-shard
// counts). Also the quoting of SQL identifiers that the export shares.
// Pure functions: safe from any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "cli/output.hpp"

namespace provdb::cli {

// Runs `sql` over `rows` (loaded as table "result"), read-only as a query on
// the files is. Throws Error(kQuerySyntax) when SQLite cannot compile the
// statement, Error(kQueryRefused) when it is not exactly one read-only
// statement, and Error(kQueryLimit) when it runs longer than `time_limit`.
Table MergeResults(const Table& rows, std::string_view sql,
                   std::chrono::milliseconds time_limit);

// `name` as an SQL identifier: in double quotes, inner ones doubled, so that
// any collection or column name can stand in a statement.
std::string QuoteIdentifier(const std::string& name);

}  // namespace provdb::cli
