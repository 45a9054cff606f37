// The second stage of a cross-shard query: the per-shard results, tagged with
// their shard, are loaded into a table named "result" of an in-memory SQLite
// database, and one more SELECT runs over it (for example summing per-shard
// counts). Also the quoting of SQL identifiers that the export shares.
// Pure functions: safe from any thread.
#pragma once

#include <string>
#include <string_view>

#include "cli/output.hpp"

namespace provdb::cli {

// Runs `sql` over `rows` (loaded as table "result"). Throws
// Error(kQuerySyntax) when SQLite cannot compile the statement and
// Error(kQueryRefused) when it is not exactly one statement.
Table MergeResults(const Table& rows, std::string_view sql);

// `name` as an SQL identifier: in double quotes, inner ones doubled, so that
// any collection or column name can stand in a statement.
std::string QuoteIdentifier(const std::string& name);

}  // namespace provdb::cli
