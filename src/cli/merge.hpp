// The second stage of a cross-shard query: the per-shard results, tagged with
// their shard, are loaded into a table named "result" of an in-memory SQLite
// database, and one more SELECT runs over it (for example summing per-shard
// counts). Pure function: safe from any thread.
#pragma once

#include <string_view>

#include "cli/output.hpp"

namespace provdb::cli {

// Runs `sql` over `rows` (loaded as table "result"). Throws
// Error(kQuerySyntax) when SQLite cannot compile the statement and
// Error(kQueryRefused) when it is not exactly one statement.
Table MergeResults(const Table& rows, std::string_view sql);

}  // namespace provdb::cli
