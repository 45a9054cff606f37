// Validation of incoming documents with simdjson (DOM, full validation) and
// extraction of indexed values with the same semantics as SQLite's
// json_extract(). Pure functions; each thread parses with its own parser.
#include "storage/document.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>

#include "common/error.hpp"

namespace provdb::storage {
namespace {

// One parser per thread: it keeps its buffers between documents, which is
// what makes batch preparation cheap.
simdjson::dom::parser& ThreadParser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

[[noreturn]] void Refuse(std::string_view which, const std::string& why) {
  throw Error(ErrorCode::kBadDocument, std::string(which) + ": " + why);
}

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t SkipSpace(std::string_view text, std::size_t pos) {
  while (pos < text.size() && IsJsonSpace(text[pos])) ++pos;
  return pos;
}

// Returns the position just past the string that starts (with '"') at `pos`.
// The text has been validated, so the closing quote exists.
std::size_t SkipString(std::string_view text, std::size_t pos) {
  for (++pos; pos < text.size(); ++pos) {
    if (text[pos] == '\\') {
      ++pos;
    } else if (text[pos] == '"') {
      return pos + 1;
    }
  }
  return pos;
}

// Returns the position just past the JSON value starting at `pos`.
std::size_t SkipValue(std::string_view text, std::size_t pos) {
  if (text[pos] == '"') return SkipString(text, pos);

  int depth = 0;
  for (; pos < text.size(); ++pos) {
    char c = text[pos];
    if (c == '"') {
      pos = SkipString(text, pos) - 1;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return pos;
      if (--depth == 0) return pos + 1;
    } else if (depth == 0 && (c == ',' || IsJsonSpace(c))) {
      return pos;
    }
  }
  return pos;
}

// One top-level member of a validated object, located in the text.
struct Member {
  std::size_t begin = 0;        // first character of the key
  std::size_t end = 0;          // one past the value
  std::string_view raw_key;     // the key as written, without quotes
  std::string_view raw_value;   // the value as written
};

// Lists the top-level members of a validated JSON object, in text order.
std::vector<Member> ScanMembers(std::string_view text) {
  std::vector<Member> members;
  std::size_t pos = SkipSpace(text, 0) + 1;  // past '{'

  while (true) {
    pos = SkipSpace(text, pos);
    if (pos >= text.size() || text[pos] != '"') break;

    Member m;
    m.begin = pos;
    std::size_t key_end = SkipString(text, pos);
    m.raw_key = text.substr(pos + 1, key_end - pos - 2);

    pos = SkipSpace(text, key_end) + 1;  // past ':'
    pos = SkipSpace(text, pos);
    std::size_t value_end = SkipValue(text, pos);
    m.raw_value = text.substr(pos, value_end - pos);
    m.end = value_end;
    members.push_back(m);

    pos = SkipSpace(text, value_end);
    if (pos >= text.size() || text[pos] != ',') break;
    ++pos;
  }
  return members;
}

// The key of a member after JSON unescaping. Keys almost never hold escapes,
// so the raw text is usually the answer.
std::string DecodedKey(std::string_view raw_key) {
  if (raw_key.find('\\') == std::string_view::npos) return std::string(raw_key);

  std::string quoted = "\"" + std::string(raw_key) + "\"";
  simdjson::dom::parser parser;
  std::string_view decoded;
  if (parser.parse(quoted).get_string().get(decoded) != simdjson::SUCCESS) {
    return std::string(raw_key);
  }
  return std::string(decoded);
}

// The text of an array or object as json_extract() renders it: the value as
// written with the whitespace between tokens removed.
std::string Minified(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t pos = 0; pos < raw.size();) {
    char c = raw[pos];
    if (c == '"') {
      std::size_t end = SkipString(raw, pos);
      out.append(raw.substr(pos, end - pos));
      pos = end;
    } else {
      if (!IsJsonSpace(c)) out.push_back(c);
      ++pos;
    }
  }
  return out;
}

// Removes every top-level "__id" member from a validated object. The kept
// members are copied as written; only the whitespace between them is lost.
std::string WithoutRecordId(std::string_view text, const std::vector<Member>& members) {
  std::size_t open = SkipSpace(text, 0);
  std::string out(text.substr(0, open + 1));
  bool first = true;
  for (const Member& m : members) {
    if (DecodedKey(m.raw_key) == "__id") continue;
    if (!first) out.push_back(',');
    out.append(text.substr(m.begin, m.end - m.begin));
    first = false;
  }

  // The root is an object, so its closing brace is the last one in the text.
  out.append(text.substr(text.rfind('}')));
  return out;
}

SqlValue ScalarValue(simdjson::dom::element value) {
  switch (value.type()) {
    case simdjson::dom::element_type::NULL_VALUE:
      return std::monostate{};
    case simdjson::dom::element_type::BOOL:
      return int64_t{bool(value) ? 1 : 0};
    case simdjson::dom::element_type::INT64:
      return int64_t(value);
    case simdjson::dom::element_type::UINT64:
      // Beyond int64: SQLite's JSON functions give a real as well.
      return double(uint64_t(value));
    case simdjson::dom::element_type::DOUBLE:
      return double(value);
    case simdjson::dom::element_type::STRING:
      return std::string(std::string_view(value));
    default:
      return std::monostate{};
  }
}

// The first top-level key that appears more than once, if any.
std::optional<std::string_view> DuplicateKey(simdjson::dom::object object) {
  std::vector<std::string_view> keys;
  keys.reserve(object.size());
  for (auto field : object) keys.push_back(field.key);
  std::sort(keys.begin(), keys.end());
  auto twice = std::adjacent_find(keys.begin(), keys.end());
  if (twice == keys.end()) return std::nullopt;
  return *twice;
}

bool IsContainer(simdjson::dom::element value) {
  auto type = value.type();
  return type == simdjson::dom::element_type::ARRAY ||
         type == simdjson::dom::element_type::OBJECT;
}

}  // namespace

PreparedDocument PrepareDocument(std::string_view json, const std::vector<std::string>& fields,
                                 std::size_t max_bytes, std::string_view which) {
  if (json.size() > max_bytes) {
    Refuse(which, "it is " + std::to_string(json.size()) + " bytes, over the limit of " +
                      std::to_string(max_bytes) +
                      " bytes; split it into smaller documents");
  }

  simdjson::dom::element root;
  auto error = ThreadParser().parse(json.data(), json.size()).get(root);
  if (error != simdjson::SUCCESS) {
    std::string why = std::string("not valid JSON (") + simdjson::error_message(error) + ")";
    if (error == simdjson::NUMBER_ERROR) {
      why += "; numbers must fit in a 64-bit integer or a double";
    }
    Refuse(which, why);
  }
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) {
    Refuse(which, "not a JSON object; every document must be an object {...}");
  }

  // Readers disagree on which of two equal keys counts (the first for a
  // filter, the last for many JSON libraries), so such a document would
  // mean different things to different users: refuse it.
  if (auto duplicate = DuplicateKey(object)) {
    Refuse(which, "the key \"" + std::string(*duplicate) +
                      "\" appears twice at the top level; keep one of them");
  }

  // The text scan is needed only to cut out "__id" or to copy the exact text
  // of an indexed array or object; plain documents skip it.
  std::vector<Member> members;
  bool scanned = false;
  auto scan = [&] {
    if (!scanned) members = ScanMembers(json);
    scanned = true;
  };

  PreparedDocument doc;
  doc.indexed.reserve(fields.size());
  for (const std::string& field : fields) {
    simdjson::dom::element value;
    if (object.at_key(field).get(value) != simdjson::SUCCESS) {
      doc.indexed.emplace_back(std::monostate{});
    } else if (IsContainer(value)) {
      // json_extract() finds the first member of that name, as at_key() does.
      scan();
      std::string text;
      for (const Member& m : members) {
        if (DecodedKey(m.raw_key) == field) {
          text = Minified(m.raw_value);
          break;
        }
      }
      doc.indexed.emplace_back(std::move(text));
    } else {
      doc.indexed.push_back(ScalarValue(value));
    }
  }

  simdjson::dom::element ignored;
  if (object.at_key("__id").get(ignored) == simdjson::SUCCESS) {
    scan();
    doc.json = WithoutRecordId(json, members);
  } else {
    doc.json.assign(json);
  }
  return doc;
}

std::vector<PreparedDocument> PrepareBatch(const std::vector<std::string_view>& docs,
                                           const std::vector<std::string>& fields,
                                           std::size_t max_bytes) {
  std::vector<PreparedDocument> prepared;
  prepared.reserve(docs.size());
  const std::string of = " of " + std::to_string(docs.size());
  for (std::size_t i = 0; i < docs.size(); ++i) {
    prepared.push_back(
        PrepareDocument(docs[i], fields, max_bytes, "document " + std::to_string(i) + of));
  }
  return prepared;
}

std::string WithRecordId(std::string_view json, int64_t id) {
  std::size_t open = SkipSpace(json, 0);
  std::size_t next = SkipSpace(json, open + 1);
  bool empty = next < json.size() && json[next] == '}';

  std::string out;
  out.reserve(json.size() + 32);
  out.append("{\"__id\":");
  out.append(std::to_string(id));
  if (!empty) out.push_back(',');
  out.append(json.substr(open + 1));
  return out;
}

}  // namespace provdb::storage
