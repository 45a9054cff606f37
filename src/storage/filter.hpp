// Translation of a filter expression, in which document fields are named
// directly, into an SQLite expression over a collection's table.
// Pure function: safe from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace provdb::storage {

// Rewrites every field reference of `expression` into SQL:
// - a name that is an indexed column (or "__id") stays a column reference,
//   so the index can be used;
// - any other name, dotted path (gpu_location.device), subscripted path
//   (call_stack[0].func) or double-quoted name ("GPU[0] Name") becomes
//   json_extract(doc, '$."name"...');
// - SQL keywords, literals, operators, and names followed by "(" (functions)
//   are kept as they are.
// Throws Error(kQuerySyntax) for an unterminated string or quoted name, and
// Error(kQueryRefused) for a ';' or a comment that could hide a second
// statement.
std::string TranslateFilter(std::string_view expression,
                            const std::vector<std::string>& indexed_columns);

}  // namespace provdb::storage
