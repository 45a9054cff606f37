// Printing query results: pretty JSON, JSON lines, CSV, or an aligned table
// for the terminal; and picking fields of documents by path
// (gpu_location.device, call_stack[0].func, "GPU[0] Name").
// Pure functions over their arguments: safe from any thread.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "storage/database.hpp"

namespace provdb::cli {

enum class Format { kJson, kJsonl, kCsv, kTable };

// Throws Error(kInvalidArgument) naming the accepted formats.
Format ParseFormat(std::string_view name);

// Rows of named columns, each cell a JSON value (null, number, string, ...).
struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<nlohmann::ordered_json>> rows;
};

// A SELECT result as a table, with a first column "shard" when `shard` is
// given.
Table FromQueryResult(const storage::QueryResult& result, std::optional<int> shard);

void WriteTable(std::ostream& out, const Table& table, Format format);

// A stored document and the shard it came from (none for the global database).
struct Document {
  std::optional<int> shard;
  storage::Record record;
};

// Writes documents. Without `fields` JSON formats print whole documents with
// "__shard" added after "__id" (replacing any "__shard" of their own), and
// CSV and table print `default_fields` or, when that is empty, every
// top-level field seen. With `fields` every format prints those paths only.
void WriteDocuments(std::ostream& out, const std::vector<Document>& docs, Format format,
                    const std::vector<std::string>& fields,
                    const std::vector<std::string>& default_fields);

// The value at `path` in `doc`, or null when any step of the path is absent.
// Throws Error(kInvalidArgument) for a malformed path.
nlohmann::ordered_json ValueAtPath(const nlohmann::ordered_json& doc, std::string_view path);

// The name under which a field path is printed: the path as written, except
// that a single quoted name ("GPU[0] Name") is printed without its quotes.
std::string FieldLabel(std::string_view path);

// Splits "a,b.c,d[0]" at the commas that are outside quotes and brackets.
std::vector<std::string> SplitFields(std::string_view list);

}  // namespace provdb::cli
