// Validation of incoming documents, and the values pulled out of them for the
// indexed columns. Preparing a batch does all the parsing, so that it can run
// on any thread and the writer thread only has SQL left to do.
// Pure functions and values: safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace provdb::storage {

inline constexpr std::size_t kDefaultMaxDocumentBytes = 16u << 20;

// A value as SQLite stores it in a column: NULL, integer, real or text.
// JSON true/false become 1/0 and arrays/objects their JSON text, the same
// values SQLite's json_extract() gives, so that a filter means the same on
// an indexed column and on the document itself.
using SqlValue = std::variant<std::monostate, int64_t, double, std::string>;

// One validated document, ready to insert.
struct PreparedDocument {
  // The JSON object as received, except that a top-level "__id" is removed
  // (the database owns that field).
  std::string json;
  // The values of the collection's indexed fields, in the order of
  // IndexedFields(collection); NULL where the document lacks the field.
  std::vector<SqlValue> indexed;
};

// Checks that `json` is one JSON object of at most `max_bytes` bytes and pulls
// out `fields`. Limitation: numbers that fit neither a 64-bit integer nor a
// double (123456789012345678901234567890, 1e400) are refused, although JSON
// allows them. Throws Error(kBadDocument) saying why it was refused; `which`
// (for example "document 3 of the batch") is put at the front of the message.
PreparedDocument PrepareDocument(std::string_view json,
                                 const std::vector<std::string>& fields,
                                 std::size_t max_bytes,
                                 std::string_view which = "document");

// Prepares every document of a batch, or throws for the first bad one naming
// its position ("document 3 of 10: not a JSON object ...").
std::vector<PreparedDocument> PrepareBatch(const std::vector<std::string_view>& docs,
                                           const std::vector<std::string>& fields,
                                           std::size_t max_bytes);

// Returns `json` (as stored) with "__id": id as its first member, without
// parsing it: the text is spliced.
std::string WithRecordId(std::string_view json, int64_t id);

}  // namespace provdb::storage
