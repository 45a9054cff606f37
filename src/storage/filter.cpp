// Translation of filter expressions: a small tokenizer that keeps SQL as it
// is and rewrites the names of document fields into column references or
// json_extract() calls. It does not parse SQL; SQLite compiles the result.
// Pure function: safe from any thread.
#include "storage/filter.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <string>

#include "common/error.hpp"

namespace provdb::storage {
namespace {

// Words that keep their SQL meaning inside a filter. Any other bare name is
// a document field; a field named as one of these must be double-quoted.
const std::set<std::string>& ExpressionKeywords() {
  static const std::set<std::string> words = {
      "all",      "and",     "as",         "asc",          "between",
      "by",       "case",    "cast",       "collate",      "cross",
      "current_date",        "current_time",               "current_timestamp",
      "desc",     "distinct", "else",      "end",          "escape",
      "except",   "exists",  "false",      "from",         "glob",
      "group",    "having",  "in",         "inner",        "intersect",
      "is",       "isnull",  "join",       "left",         "like",
      "limit",    "match",   "not",        "notnull",      "null",
      "offset",   "on",      "or",         "order",        "regexp",
      "select",   "then",    "true",       "union",        "using",
      "values",   "when",    "where",      "with",         "recursive",
  };
  return words;
}

// Table-valued functions whose columns may be named as "json_each.value".
bool IsTableFunction(const std::string& lower) {
  return lower == "json_each" || lower == "json_tree";
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

bool IsNameStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

bool IsNameChar(char c) {
  return IsNameStart(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}

// One element of a field path: a member name or an array subscript.
struct PathStep {
  bool subscript = false;
  std::string text;  // the member name, or the subscript's digits
};

class Translator {
 public:
  Translator(std::string_view expr, const std::vector<std::string>& indexed)
      : in_(expr), indexed_(indexed) {}

  std::string Run() {
    if (NextNonSpace(0) == '\0') {
      Fail(ErrorCode::kQuerySyntax, "the filter is empty; give a condition such as fid = 500");
    }
    while (pos_ < in_.size()) Step();
    if (!parens_.empty()) {
      Fail(ErrorCode::kQuerySyntax, "a '(' is never closed");
    }
    return out_;
  }

 private:
  // What opened a parenthesis: CAST's parenthesis holds a type name after AS.
  enum class Paren { kPlain, kCast };

  [[noreturn]] void Fail(ErrorCode code, const std::string& why) const {
    throw Error(code, "filter \"" + std::string(in_) + "\" at offset " + std::to_string(pos_) +
                          ": " + why);
  }

  char Peek(std::size_t ahead = 0) const {
    return pos_ + ahead < in_.size() ? in_[pos_ + ahead] : '\0';
  }

  char NextNonSpace(std::size_t from) const {
    while (from < in_.size() && std::isspace(static_cast<unsigned char>(in_[from]))) ++from;
    return from < in_.size() ? in_[from] : '\0';
  }

  void Step() {
    char c = Peek();
    if (std::isspace(static_cast<unsigned char>(c))) {
      out_.push_back(c);
      ++pos_;
    } else if (c == ';') {
      Fail(ErrorCode::kQueryRefused,
           "';' is not allowed: a filter is one expression, not statements");
    } else if ((c == '-' && Peek(1) == '-') || (c == '/' && Peek(1) == '*')) {
      Fail(ErrorCode::kQueryRefused, "comments are not allowed in a filter");
    } else if (c == '\'') {
      CopyQuoted('\'', "string literal");
      last_word_.clear();
    } else if ((c == 'x' || c == 'X') && Peek(1) == '\'') {
      out_.push_back(c);
      ++pos_;
      CopyQuoted('\'', "blob literal");
      last_word_.clear();
    } else if (c == '"' || c == '`') {
      Reference(ReadQuotedName(c));
    } else if (IsNameStart(c)) {
      Word();
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && std::isdigit(static_cast<unsigned char>(Peek(1))))) {
      Number();
    } else if (c == '(') {
      parens_.push_back(cast_pending_ ? Paren::kCast : Paren::kPlain);
      cast_pending_ = false;
      out_.push_back(c);
      ++pos_;
      last_word_.clear();
    } else if (c == ')') {
      if (parens_.empty()) Fail(ErrorCode::kQuerySyntax, "a ')' closes nothing");
      parens_.pop_back();
      type_name_ = false;
      out_.push_back(c);
      ++pos_;
      last_word_.clear();
    } else {
      out_.push_back(c);
      ++pos_;
      last_word_.clear();
    }
  }

  // Copies a quoted token whose quote is doubled inside it ('it''s').
  void CopyQuoted(char quote, const char* what) {
    std::size_t start = pos_;
    ++pos_;
    while (true) {
      if (pos_ >= in_.size()) {
        pos_ = start;
        Fail(ErrorCode::kQuerySyntax, std::string("unterminated ") + what);
      }
      if (in_[pos_] == quote) {
        if (Peek(1) == quote) {
          pos_ += 2;
          continue;
        }
        ++pos_;
        break;
      }
      ++pos_;
    }
    out_.append(in_.substr(start, pos_ - start));
  }

  std::string ReadQuotedName(char quote) {
    std::size_t start = pos_;
    std::string name;
    ++pos_;
    while (true) {
      if (pos_ >= in_.size()) {
        pos_ = start;
        Fail(ErrorCode::kQuerySyntax, "unterminated quoted name");
      }
      if (in_[pos_] == quote) {
        if (Peek(1) == quote) {
          name.push_back(quote);
          pos_ += 2;
          continue;
        }
        ++pos_;
        return name;
      }
      name.push_back(in_[pos_++]);
    }
  }

  std::string ReadName() {
    std::size_t start = pos_;
    while (pos_ < in_.size() && IsNameChar(in_[pos_])) ++pos_;
    return std::string(in_.substr(start, pos_ - start));
  }

  void Number() {
    std::size_t start = pos_;
    if (Peek() == '0' && (Peek(1) == 'x' || Peek(1) == 'X')) {
      pos_ += 2;
      while (std::isxdigit(static_cast<unsigned char>(Peek()))) ++pos_;
    } else {
      while (std::isdigit(static_cast<unsigned char>(Peek())) || Peek() == '.') ++pos_;
      if (Peek() == 'e' || Peek() == 'E') {
        ++pos_;
        if (Peek() == '+' || Peek() == '-') ++pos_;
        while (std::isdigit(static_cast<unsigned char>(Peek()))) ++pos_;
      }
    }
    out_.append(in_.substr(start, pos_ - start));
    last_word_.clear();
  }

  // A bare word: a keyword, a function name, a type name, an alias, or a field.
  void Word() {
    std::size_t start = pos_;
    std::string word = ReadName();
    std::string lower = Lower(word);
    std::string previous = last_word_;
    last_word_ = lower;

    // A function call: the name is SQL's. CAST opens a parenthesis whose
    // "AS <type>" names a type, not a field.
    if (NextNonSpace(pos_) == '(') {
      cast_pending_ = lower == "cast";
      out_.append(word);
      return;
    }

    if (ExpressionKeywords().count(lower) != 0) {
      if (lower == "as" && !parens_.empty() && parens_.back() == Paren::kCast) {
        type_name_ = true;
      }
      out_.append(word);
      return;
    }

    // Names SQL gives meaning to by position: a type in CAST, a collation,
    // a table or alias introduced by FROM/JOIN/AS.
    if (type_name_ || previous == "collate") {
      out_.append(word);
      return;
    }
    if (previous == "as" || previous == "from" || previous == "join") {
      aliases_.insert(lower);
      out_.append(word);
      return;
    }

    // Columns of a table or alias of a subquery: kept, path and all.
    if (Peek() == '.' && (aliases_.count(lower) != 0 || IsTableFunction(lower))) {
      out_.append(in_.substr(start, pos_ - start));
      out_.push_back('.');
      ++pos_;
      if (Peek() == '"') {
        std::size_t q = pos_;
        ReadQuotedName('"');
        out_.append(in_.substr(q, pos_ - q));
      } else {
        out_.append(ReadName());
      }
      return;
    }

    Reference(word);
  }

  // A field reference whose first name has been read; reads the rest of its
  // path (.name, ."quoted name", [digits]) and writes the SQL for it.
  void Reference(const std::string& first) {
    std::vector<PathStep> path{{false, first}};
    while (true) {
      if (Peek() == '.' && Peek(1) == '"') {
        ++pos_;
        path.push_back({false, ReadQuotedName('"')});
      } else if (Peek() == '.' && IsNameStart(Peek(1))) {
        ++pos_;
        path.push_back({false, ReadName()});
      } else if (Peek() == '[') {
        std::size_t start = ++pos_;
        while (std::isdigit(static_cast<unsigned char>(Peek()))) ++pos_;
        if (pos_ == start || Peek() != ']') {
          Fail(ErrorCode::kQuerySyntax, "a subscript must be a number in brackets, as in a[0]");
        }
        path.push_back({true, std::string(in_.substr(start, pos_ - start))});
        ++pos_;
      } else {
        break;
      }
    }
    last_word_.clear();

    if (path.size() == 1 && (first == "__id" || std::find(indexed_.begin(), indexed_.end(),
                                                          first) != indexed_.end())) {
      out_.append("\"" + first + "\"");
      return;
    }

    std::string json_path = "$";
    for (const PathStep& step : path) {
      if (step.subscript) {
        json_path += "[" + step.text + "]";
        continue;
      }
      if (step.text.find('"') != std::string::npos) {
        Fail(ErrorCode::kQuerySyntax,
             "the field name " + step.text + " holds a '\"', which a JSON path cannot name");
      }
      json_path += ".\"" + step.text + "\"";
    }

    // The path goes inside an SQL string literal, where a quote is doubled.
    std::string literal;
    for (char c : json_path) {
      literal.push_back(c);
      if (c == '\'') literal.push_back('\'');
    }
    out_.append("json_extract(doc, '" + literal + "')");
  }

  std::string_view in_;
  const std::vector<std::string>& indexed_;
  std::size_t pos_ = 0;
  std::string out_;
  std::vector<Paren> parens_;
  std::set<std::string> aliases_;
  std::string last_word_;
  bool cast_pending_ = false;
  bool type_name_ = false;
};

}  // namespace

std::string TranslateFilter(std::string_view expression,
                            const std::vector<std::string>& indexed_columns) {
  return Translator(expression, indexed_columns).Run();
}

}  // namespace provdb::storage
