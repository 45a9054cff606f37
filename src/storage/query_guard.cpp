// QueryGuard: the checks are SQLite's own (authorizer, sqlite3_stmt_readonly,
// progress handler), so a statement is judged by what it compiles to, not by
// how it is spelled.
#include "storage/query_guard.hpp"

#include <sqlite3.h>

#include "common/error.hpp"

namespace provdb::storage {
namespace {

// The progress handler runs every this many virtual machine instructions.
constexpr int kProgressInterval = 1000;

const char* ActionName(int action) {
  switch (action) {
    case SQLITE_INSERT: return "insert into";
    case SQLITE_UPDATE: return "update";
    case SQLITE_DELETE: return "delete from";
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_TEMP_TABLE: return "create table";
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TEMP_INDEX: return "create index";
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_TEMP_VIEW: return "create view";
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TRIGGER: return "create trigger";
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_TABLE: return "drop table";
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TEMP_INDEX: return "drop index";
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TEMP_VIEW: return "drop view";
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TRIGGER: return "drop trigger";
    case SQLITE_ATTACH: return "attach a database";
    case SQLITE_DETACH: return "detach a database";
    case SQLITE_PRAGMA: return "run a PRAGMA";
    case SQLITE_TRANSACTION: return "control a transaction";
    case SQLITE_SAVEPOINT: return "use a savepoint";
    case SQLITE_ALTER_TABLE: return "alter table";
    case SQLITE_REINDEX: return "reindex";
    case SQLITE_ANALYZE: return "analyze";
    case SQLITE_CREATE_VTABLE: return "create a virtual table";
    case SQLITE_DROP_VTABLE: return "drop a virtual table";
    default: return "do something other than read";
  }
}

struct Deadline {
  std::chrono::steady_clock::time_point at;
  bool passed = false;
};

int ProgressHandler(void* user) {
  auto* deadline = static_cast<Deadline*>(user);
  if (std::chrono::steady_clock::now() >= deadline->at) {
    deadline->passed = true;
    return 1;
  }
  return 0;
}

// The bytes of the values of the current row. Only text and blobs are asked
// for their size: asking a number converts it to text, after which SQLite
// no longer reports its type.
std::size_t RowBytes(sqlite3_stmt* stmt) {
  std::size_t bytes = 0;
  for (int c = 0, n = sqlite3_column_count(stmt); c < n; ++c) {
    int type = sqlite3_column_type(stmt, c);
    bytes += type == SQLITE_TEXT || type == SQLITE_BLOB
                 ? std::size_t(sqlite3_column_bytes(stmt, c))
                 : sizeof(int64_t);
  }
  return bytes;
}

}  // namespace

void StatementFinalizer::operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }

QueryGuard::QueryGuard(sqlite3* db) : db_(db) { sqlite3_set_authorizer(db_, Authorize, this); }

QueryGuard::~QueryGuard() { sqlite3_set_authorizer(db_, nullptr, nullptr); }

// Allows only what a SELECT needs. SQLite calls it while compiling, so a
// refused statement never runs.
int QueryGuard::Authorize(void* self, int action, const char* arg1, const char*, const char*,
                          const char*) {
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    default:
      break;
  }

  // The first use of a table-valued function such as json_each() registers
  // it in the in-memory schema, which SQLite reports as an update of
  // sqlite_master. Nothing is written: sqlite3_stmt_readonly() is checked
  // after compiling.
  bool schema_table = arg1 != nullptr && (std::string_view(arg1) == "sqlite_master" ||
                                          std::string_view(arg1) == "sqlite_schema");
  if (action == SQLITE_UPDATE && schema_table) return SQLITE_OK;

  auto* guard = static_cast<QueryGuard*>(self);
  if (guard->refused_.empty()) {
    if (schema_table) {
      // CREATE and DROP are reported first as writes to sqlite_master.
      guard->refused_ = "change the database schema (CREATE, DROP, ALTER)";
    } else {
      guard->refused_ = ActionName(action);
      if (arg1 != nullptr && action != SQLITE_TRANSACTION) {
        guard->refused_ += std::string(" ") + arg1;
      }
    }
  }
  return SQLITE_DENY;
}

StatementPtr QueryGuard::Compile(std::string_view sql, std::string_view what) {
  refused_.clear();
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), int(sql.size()), &raw, &tail);
  StatementPtr stmt(raw);
  if (rc != SQLITE_OK) {
    if (!refused_.empty()) {
      throw Error(ErrorCode::kQueryRefused,
                  std::string(what) + " was refused: it would " + refused_ +
                      "; queries may only read (SELECT or WITH ... SELECT)");
    }
    throw Error(ErrorCode::kQuerySyntax,
                std::string(what) + " does not compile: " + sqlite3_errmsg(db_));
  }
  if (stmt == nullptr) {
    throw Error(ErrorCode::kQuerySyntax, std::string(what) + " is empty");
  }

  auto refuse = [&](const std::string& why) {
    throw Error(ErrorCode::kQueryRefused, std::string(what) + " was refused: " + why);
  };
  if (!sqlite3_stmt_readonly(stmt.get())) {
    refuse("it would write; queries may only read (SELECT or WITH ... SELECT)");
  }

  // Anything after the first statement other than blanks, ';' and comments
  // is a second statement.
  std::string_view rest(tail, std::size_t(sql.data() + sql.size() - tail));
  while (!rest.empty()) {
    sqlite3_stmt* next = nullptr;
    const char* next_tail = nullptr;
    int next_rc = sqlite3_prepare_v2(db_, rest.data(), int(rest.size()), &next, &next_tail);
    bool more = next_rc != SQLITE_OK || next != nullptr;
    sqlite3_finalize(next);
    if (more) refuse("it holds more than one statement; send one SELECT at a time");
    rest.remove_prefix(std::size_t(next_tail - rest.data()));
  }
  return stmt;
}

void QueryGuard::Run(sqlite3_stmt* stmt, std::string_view what, const RunLimits& limits,
                     const std::function<void(sqlite3_stmt*)>& row) {
  Deadline deadline{std::chrono::steady_clock::now() + limits.time};
  sqlite3_progress_handler(db_, kProgressInterval, ProgressHandler, &deadline);
  struct Unhook {
    sqlite3* db;
    ~Unhook() { sqlite3_progress_handler(db, 0, nullptr, nullptr); }
  } unhook{db_};

  std::size_t rows = 0;
  std::size_t bytes = 0;
  while (true) {
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) return;
    if (rc == SQLITE_ROW) {
      if (++rows > limits.rows) {
        throw Error(ErrorCode::kQueryLimit,
                    std::string(what) + " returned more than its row limit of " +
                        std::to_string(limits.rows) +
                        " rows; narrow it (WHERE, LIMIT) or raise the row limit");
      }
      bytes += RowBytes(stmt);
      if (bytes > limits.bytes) {
        throw Error(ErrorCode::kQueryLimit,
                    std::string(what) + " returned more than its limit of " +
                        std::to_string(limits.bytes >> 20) +
                        " MiB of data; narrow it (WHERE, LIMIT, fewer columns)");
      }
      row(stmt);
      continue;
    }
    if (deadline.passed || (rc & 0xff) == SQLITE_INTERRUPT) {
      throw Error(ErrorCode::kQueryLimit,
                  std::string(what) + " ran past its time limit of " +
                      std::to_string(limits.time.count()) +
                      " ms and was stopped; narrow it or raise the time limit");
    }
    throw Error(ErrorCode::kQuerySyntax,
                std::string(what) + " failed while running: " + sqlite3_errmsg(db_));
  }
}

}  // namespace provdb::storage
