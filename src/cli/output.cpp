// Result printing. Documents are parsed only when a format or a field list
// needs it: JSON lines of whole documents are written by splicing the shard
// into the stored text.
#include "cli/output.hpp"

#include <algorithm>
#include <set>

#include "cli/terminal_text.hpp"
#include "common/error.hpp"

namespace provdb::cli {
namespace {

using ojson = nlohmann::ordered_json;

constexpr std::size_t kMaxCellWidth = 48;

std::string Dump(const ojson& v, int indent = -1) {
  return v.dump(indent, ' ', false, ojson::error_handler_t::replace);
}

// A cell as text: strings without quotes, null as nothing, anything else as
// compact JSON.
std::string CellText(const ojson& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  return Dump(v);
}

// Shortened to at most kMaxCellWidth terminal cells on one line, with
// nothing in it that the terminal would act on.
std::string TableCell(const ojson& v) { return Shorten(Printable(CellText(v)), kMaxCellWidth); }

std::string CsvCell(const ojson& v) {
  std::string s = CellText(v);
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

void WriteAligned(std::ostream& out, const Table& table) {
  if (table.columns.empty()) return;
  std::vector<std::vector<std::string>> cells;
  std::vector<std::size_t> width(table.columns.size());
  std::vector<std::string> header;
  for (std::size_t c = 0; c < table.columns.size(); ++c) {
    header.push_back(Printable(table.columns[c]));
    width[c] = DisplayWidth(header.back());
  }
  for (const auto& row : table.rows) {
    auto& line = cells.emplace_back();
    for (std::size_t c = 0; c < row.size(); ++c) {
      line.push_back(TableCell(row[c]));
      width[c] = std::max(width[c], DisplayWidth(line.back()));
    }
  }

  // Lines end without blanks, also when their last cells are empty.
  auto write = [&](const std::vector<std::string>& line, const std::vector<ojson>* values) {
    std::string text;
    for (std::size_t c = 0; c < line.size(); ++c) {
      const std::string fill(width[c] - DisplayWidth(line[c]), ' ');
      const bool right = values != nullptr && (*values)[c].is_number();
      text += (c > 0 ? "  " : "") + (right ? fill + line[c] : line[c] + fill);
    }
    text.erase(text.find_last_not_of(' ') + 1);
    out << text << '\n';
  };
  write(header, nullptr);
  std::vector<std::string> rule;
  for (std::size_t c = 0; c < width.size(); ++c) rule.emplace_back(width[c], '-');
  write(rule, nullptr);
  for (std::size_t r = 0; r < cells.size(); ++r) write(cells[r], &table.rows[r]);
}

ojson RowObject(const Table& table, const std::vector<ojson>& row) {
  ojson obj = ojson::object();
  for (std::size_t c = 0; c < table.columns.size(); ++c) obj[table.columns[c]] = row[c];
  return obj;
}

// The document with "__shard" right after "__id". Like "__id", "__shard"
// is the tool's: a member of that name in the stored document is replaced.
ojson Tagged(const Document& doc) {
  ojson parsed = ojson::parse(doc.record.json);
  if (!doc.shard) return parsed;
  ojson out = ojson::object();
  out["__id"] = doc.record.id;
  out["__shard"] = *doc.shard;
  for (auto& [key, value] : parsed.items()) {
    if (key != "__id" && key != "__shard") out[key] = std::move(value);
  }
  return out;
}

// The stored text with ,"__shard":k spliced after the "__id" value, which
// is always the first member. A document that holds a "__shard" of its own
// (rare) is parsed and rewritten instead, to drop it.
std::string TaggedText(const Document& doc) {
  const std::string& json = doc.record.json;
  if (!doc.shard) return json;
  if (json.find("\"__shard\"") != std::string::npos) return Dump(Tagged(doc));
  const std::size_t end = json.find_first_of(",}");
  if (end == std::string::npos) return json;
  return json.substr(0, end) + ",\"__shard\":" + std::to_string(*doc.shard) + json.substr(end);
}

std::vector<std::string> AllTopLevelFields(const std::vector<ojson>& docs) {
  std::vector<std::string> fields;
  std::set<std::string> seen;
  for (const auto& d : docs) {
    for (const auto& [key, value] : d.items()) {
      if (seen.insert(key).second) fields.push_back(key);
    }
  }
  return fields;
}

}  // namespace

Format ParseFormat(std::string_view name) {
  if (name == "json") return Format::kJson;
  if (name == "jsonl") return Format::kJsonl;
  if (name == "csv") return Format::kCsv;
  if (name == "table") return Format::kTable;
  throw Error(ErrorCode::kInvalidArgument, "unknown format '" + std::string(name) +
                                               "'; use json, jsonl, csv or table");
}

Table FromQueryResult(const storage::QueryResult& result, std::optional<int> shard) {
  Table table;
  if (shard) table.columns.push_back("shard");
  table.columns.insert(table.columns.end(), result.columns.begin(), result.columns.end());
  for (const auto& row : result.rows) {
    auto& out = table.rows.emplace_back();
    if (shard) out.push_back(*shard);
    for (const auto& v : row) {
      if (auto i = std::get_if<int64_t>(&v)) {
        out.push_back(*i);
      } else if (auto d = std::get_if<double>(&v)) {
        out.push_back(*d);
      } else if (auto s = std::get_if<std::string>(&v)) {
        out.push_back(*s);
      } else {
        out.push_back(nullptr);
      }
    }
  }
  return table;
}

void WriteTable(std::ostream& out, const Table& table, Format format) {
  switch (format) {
    case Format::kTable:
      WriteAligned(out, table);
      return;
    case Format::kCsv:
      for (std::size_t c = 0; c < table.columns.size(); ++c) {
        out << (c > 0 ? "," : "") << CsvCell(table.columns[c]);
      }
      out << '\n';
      for (const auto& row : table.rows) {
        for (std::size_t c = 0; c < row.size(); ++c) out << (c > 0 ? "," : "") << CsvCell(row[c]);
        out << '\n';
      }
      return;
    case Format::kJsonl:
      for (const auto& row : table.rows) out << Dump(RowObject(table, row)) << '\n';
      return;
    case Format::kJson: {
      ojson all = ojson::array();
      for (const auto& row : table.rows) all.push_back(RowObject(table, row));
      out << Dump(all, 2) << '\n';
      return;
    }
  }
}

void WriteDocuments(std::ostream& out, const std::vector<Document>& docs, Format format,
                    const std::vector<std::string>& fields,
                    const std::vector<std::string>& default_fields) {
  if (fields.empty() && format == Format::kJsonl) {
    for (const auto& d : docs) out << TaggedText(d) << '\n';
    return;
  }

  std::vector<ojson> parsed;
  parsed.reserve(docs.size());
  for (const auto& d : docs) parsed.push_back(Tagged(d));

  if (fields.empty() && format == Format::kJson) {
    out << Dump(ojson(parsed), 2) << '\n';
    return;
  }

  const std::vector<std::string> paths = !fields.empty()           ? fields
                                         : !default_fields.empty() ? default_fields
                                                                   : AllTopLevelFields(parsed);
  Table table;
  for (const auto& p : paths) table.columns.push_back(FieldLabel(p));
  for (const auto& d : parsed) {
    auto& row = table.rows.emplace_back();
    for (const auto& p : paths) row.push_back(ValueAtPath(d, p));
  }
  WriteTable(out, table, format);
}

// A path is checked whole before it is followed, so that a malformed one is
// reported even when the documents lack its first step.
ojson ValueAtPath(const ojson& doc, std::string_view path) {
  struct Step {
    std::string key;  // empty for an index
    std::size_t index = 0;
  };
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument,
                 "bad field path '" + std::string(path) + "': " + why +
                     "; write paths as a.b, a[0].b or \"name with spaces\"");
  };

  std::vector<Step> steps;
  std::size_t i = 0;
  while (i < path.size()) {
    Step step;
    if (path[i] == '[') {
      const std::size_t close = path.find(']', i);
      if (close == std::string_view::npos) throw bad("unclosed [");
      const std::string digits(path.substr(i + 1, close - i - 1));
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) {
        throw bad("an index between [ and ] must be a number");
      }
      step.index = std::stoul(digits);
      i = close + 1;
    } else if (path[i] == '"') {
      const std::size_t close = path.find('"', i + 1);
      if (close == std::string_view::npos) throw bad("unclosed quote");
      step.key = path.substr(i + 1, close - i - 1);
      i = close + 1;
      if (step.key.empty()) throw bad("empty field name");
    } else {
      const std::size_t end = std::min(path.find_first_of(".[", i), path.size());
      step.key = path.substr(i, end - i);
      i = end;
      if (step.key.empty()) throw bad("empty field name");
    }
    steps.push_back(std::move(step));
    if (i < path.size() && path[i] == '.') {
      ++i;
      if (i == path.size()) throw bad("ends with a dot");
    } else if (i < path.size() && path[i] != '[') {
      throw bad("expected . or [ after a name");
    }
  }
  if (steps.empty()) throw bad("empty path");

  const ojson* at = &doc;
  for (const auto& step : steps) {
    if (step.key.empty()) {
      if (!at->is_array() || step.index >= at->size()) return nullptr;
      at = &(*at)[step.index];
      continue;
    }
    if (!at->is_object()) return nullptr;
    auto it = at->find(step.key);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return *at;
}

std::string FieldLabel(std::string_view path) {
  const bool one_quoted_name = path.size() >= 2 && path.front() == '"' &&
                               path.find('"', 1) == path.size() - 1;
  return std::string(one_quoted_name ? path.substr(1, path.size() - 2) : path);
}

std::vector<std::string> SplitFields(std::string_view list) {
  std::vector<std::string> out;
  std::string current;
  bool quoted = false;
  int depth = 0;
  for (char c : list) {
    if (c == '"') quoted = !quoted;
    if (!quoted && c == '[') ++depth;
    if (!quoted && c == ']') --depth;
    if (c == ',' && !quoted && depth == 0) {
      if (!current.empty()) out.push_back(current);
      current.clear();
      continue;
    }
    if (!(c == ' ' && current.empty())) current += c;
  }
  if (!current.empty()) out.push_back(current);
  return out;
}

}  // namespace provdb::cli
