// MergeResults over a private in-memory database: nothing the statement does
// can reach the run's files, so it needs no read-only checks of its own.
#include "cli/merge.hpp"

#include <sqlite3.h>

#include <memory>

#include "common/error.hpp"

namespace provdb::cli {
namespace {

using ojson = nlohmann::ordered_json;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

StmtPtr Prepare(sqlite3* db, std::string_view sql, const std::string& what) {
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, &tail) !=
      SQLITE_OK) {
    throw Error(ErrorCode::kQuerySyntax,
                what + " '" + std::string(sql) + "' does not compile: " + sqlite3_errmsg(db) +
                    "; it runs over the table result(shard, <columns of --sql>)");
  }
  StmtPtr out(stmt);
  const std::string_view rest(tail, sql.data() + sql.size() - tail);
  if (rest.find_first_not_of(" \t\r\n;") != std::string_view::npos) {
    throw Error(ErrorCode::kQueryRefused,
                what + " must be one statement; found more after '" +
                    std::string(sql.substr(0, sql.size() - rest.size())) + "'");
  }
  if (out == nullptr) {
    throw Error(ErrorCode::kQuerySyntax, what + " is empty; give a SELECT over table result");
  }
  return out;
}

void Bind(sqlite3_stmt* stmt, int index, const ojson& v) {
  if (v.is_null()) {
    sqlite3_bind_null(stmt, index);
  } else if (v.is_number_integer() || v.is_boolean()) {
    sqlite3_bind_int64(stmt, index, v.is_boolean() ? v.get<bool>() : v.get<int64_t>());
  } else if (v.is_number()) {
    sqlite3_bind_double(stmt, index, v.get<double>());
  } else {
    const std::string s = v.is_string() ? v.get<std::string>() : v.dump();
    sqlite3_bind_text(stmt, index, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
}

void Load(sqlite3* db, const Table& rows) {
  std::string create = "CREATE TABLE result(";
  std::string insert = "INSERT INTO result VALUES(";
  for (std::size_t c = 0; c < rows.columns.size(); ++c) {
    create += (c > 0 ? ", " : "") + QuoteIdentifier(rows.columns[c]);
    insert += c > 0 ? ", ?" : "?";
  }
  create += ")";
  insert += ")";
  if (sqlite3_exec(db, create.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("cannot hold the per-shard results for --merge: ") +
                    sqlite3_errmsg(db) + "; give every column of --sql a distinct name");
  }

  sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
  StmtPtr stmt = Prepare(db, insert, "the loading statement");
  for (const auto& row : rows.rows) {
    for (std::size_t c = 0; c < row.size(); ++c) Bind(stmt.get(), static_cast<int>(c + 1), row[c]);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
      throw Error(ErrorCode::kInternal, std::string("loading --merge rows: ") + sqlite3_errmsg(db));
    }
    sqlite3_reset(stmt.get());
  }
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
}

ojson Column(sqlite3_stmt* stmt, int c) {
  switch (sqlite3_column_type(stmt, c)) {
    case SQLITE_INTEGER: return sqlite3_column_int64(stmt, c);
    case SQLITE_FLOAT: return sqlite3_column_double(stmt, c);
    case SQLITE_NULL: return nullptr;
    default: {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
      return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, c)));
    }
  }
}

}  // namespace

std::string QuoteIdentifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

Table MergeResults(const Table& rows, std::string_view sql) {
  sqlite3* raw = nullptr;
  if (sqlite3_open(":memory:", &raw) != SQLITE_OK) {
    sqlite3_close(raw);
    throw Error(ErrorCode::kInternal, "cannot open an in-memory SQLite database for --merge");
  }
  DbPtr db(raw);
  Load(db.get(), rows);

  StmtPtr stmt = Prepare(db.get(), sql, "--merge statement");
  Table out;
  const int n = sqlite3_column_count(stmt.get());
  for (int c = 0; c < n; ++c) out.columns.push_back(sqlite3_column_name(stmt.get(), c));
  int rc = 0;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    auto& row = out.rows.emplace_back();
    for (int c = 0; c < n; ++c) row.push_back(Column(stmt.get(), c));
  }
  if (rc != SQLITE_DONE) {
    throw Error(ErrorCode::kQuerySyntax, "--merge statement '" + std::string(sql) +
                                             "' failed: " + sqlite3_errmsg(db.get()));
  }
  return out;
}

}  // namespace provdb::cli
