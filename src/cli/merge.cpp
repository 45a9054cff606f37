// MergeResults over a private in-memory database. The statement is guarded
// as a query on the run's files is: without the guard it could ATTACH a file
// and write there, and an endless one would never return.
#include "cli/merge.hpp"

#include <sqlite3.h>

#include <memory>

#include "common/error.hpp"
#include "storage/query_guard.hpp"

namespace provdb::cli {
namespace {

using ojson = nlohmann::ordered_json;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using storage::StatementPtr;

StatementPtr PrepareInsert(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    throw Error(ErrorCode::kInternal,
                "cannot prepare the loading of --merge rows: " + std::string(sqlite3_errmsg(db)));
  }
  return StatementPtr(stmt);
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
  StatementPtr stmt = PrepareInsert(db, insert);
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

Table MergeResults(const Table& rows, std::string_view sql,
                   std::chrono::milliseconds time_limit) {
  sqlite3* raw = nullptr;
  if (sqlite3_open(":memory:", &raw) != SQLITE_OK) {
    sqlite3_close(raw);
    throw Error(ErrorCode::kInternal, "cannot open an in-memory SQLite database for --merge");
  }
  DbPtr db(raw);
  Load(db.get(), rows);

  // The guard comes after loading, which writes; it goes before the
  // database closes.
  storage::QueryGuard guard(db.get());
  const std::string what = "--merge statement '" + std::string(sql) + "'";
  StatementPtr stmt;
  try {
    stmt = guard.Compile(sql, what);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kQuerySyntax) throw;
    throw Error(e.code(), std::string(e.what()) +
                              "; it runs over the table result(shard, <columns of --sql>)");
  }

  Table out;
  const int n = sqlite3_column_count(stmt.get());
  for (int c = 0; c < n; ++c) out.columns.push_back(sqlite3_column_name(stmt.get(), c));
  storage::RunLimits limits;
  limits.time = time_limit;
  // Like a query on the files, this runs on the analyst's own machine, so
  // only its time is bounded.
  limits.rows = std::size_t{1} << 40;
  limits.bytes = std::size_t{1} << 40;
  guard.Run(stmt.get(), what, limits, [&](sqlite3_stmt* row) {
    auto& values = out.rows.emplace_back();
    for (int c = 0; c < n; ++c) values.push_back(Column(row, c));
  });
  return out;
}

}  // namespace provdb::cli
