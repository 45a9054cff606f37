// The SQLite-backed Database: one writer connection behind a mutex, and a
// pool of read-only connections for readers. Each connection keeps its own
// cache of prepared statements and is used by one thread at a time, so the
// connections are opened without SQLite's own mutexes.
#include "storage/database.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <exception>
#include <limits>
#include <mutex>
#include <stop_token>
#include <thread>
#include <unordered_map>

#include "common/error.hpp"
#include "storage/filter.hpp"
#include "storage/query_guard.hpp"

namespace provdb::storage {
namespace {

// Written into the file header, so that opening some other SQLite file as a
// provdb database is noticed ("prov").
constexpr int kApplicationId = 0x70726f76;

// How long a connection waits for a lock held by another one (checkpoints,
// another process) before reporting a storage error.
constexpr int kBusyTimeoutMs = 10'000;

constexpr std::size_t kMaxNameLength = 64;

// Batches at least this large are validated on a helper thread while the
// writer inserts; below, a thread costs more than the overlap gains.
constexpr std::size_t kPipelineMinDocs = 32;
constexpr std::size_t kPipelineMinBytes = 256u << 10;

// WAL size, in pages, at which a background checkpoint is asked for (the
// size at which SQLite would checkpoint on its own), and the size at which
// the writer checkpoints itself because the background ones fall behind.
constexpr int kWalCheckpointPages = 1000;
constexpr int kWalWriterCheckpointPages = 10'000;

std::string Quoted(std::string_view name) { return "\"" + std::string(name) + "\""; }

std::string IndexName(std::string_view collection, std::string_view field) {
  // ':' cannot appear in a checked name, so no two pairs give the same name,
  // and the "provdb_" prefix is reserved so no collection can collide.
  return Quoted("provdb_idx:" + std::string(collection) + ":" + std::string(field));
}

std::string JoinFields(const std::vector<std::string>& fields) {
  std::string out;
  for (const std::string& f : fields) {
    if (!out.empty()) out.push_back(',');
    out += f;
  }
  return out;
}

std::vector<std::string> SplitFields(std::string_view text) {
  std::vector<std::string> fields;
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    fields.emplace_back(text.substr(0, comma));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return fields;
}

// Checks the name of an indexed field: it becomes a column name and must be
// usable bare in a filter, so it follows the rule of collection names.
void CheckFieldName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxNameLength &&
            !std::isdigit(static_cast<unsigned char>(name[0])) && name != "doc" &&
            name != "__id";
  for (char c : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  }
  if (!ok) {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot index field \"" + std::string(name) +
                    "\": an indexed field name has 1 to 64 letters, digits or underscores, "
                    "does not start with a digit, and is not \"doc\" or \"__id\"");
  }
}

bool IsNoSuchTable(sqlite3* db) {
  return std::string_view(sqlite3_errmsg(db)).starts_with("no such table");
}

SqlValue ColumnValue(sqlite3_stmt* stmt, int column) {
  switch (sqlite3_column_type(stmt, column)) {
    case SQLITE_INTEGER:
      return int64_t(sqlite3_column_int64(stmt, column));
    case SQLITE_FLOAT:
      return sqlite3_column_double(stmt, column);
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      const void* data = sqlite3_column_blob(stmt, column);
      int bytes = sqlite3_column_bytes(stmt, column);
      return std::string(static_cast<const char*>(data), std::size_t(bytes));
    }
    default:
      return std::monostate{};
  }
}

std::string_view ColumnText(sqlite3_stmt* stmt, int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
  return {text == nullptr ? "" : text, std::size_t(sqlite3_column_bytes(stmt, column))};
}

void Bind(sqlite3_stmt* stmt, int index, const SqlValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) {
    sqlite3_bind_int64(stmt, index, *i);
  } else if (const auto* d = std::get_if<double>(&value)) {
    sqlite3_bind_double(stmt, index, *d);
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    sqlite3_bind_text(stmt, index, s->data(), int(s->size()), SQLITE_STATIC);
  } else {
    sqlite3_bind_null(stmt, index);
  }
}

// One SQLite connection with its prepared statements. Used by one thread at
// a time: the writer under the writer mutex, a reader while leased.
class Connection {
 public:
  Connection(const std::filesystem::path& path, int flags) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw Error(ErrorCode::kStorage, "cannot open database file " + path.string() + ": " +
                                           why + "; check the path and its permissions");
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  }

  ~Connection() {
    guard_.reset();
    ClearStatements();
    sqlite3_close_v2(db_);
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }
  // The read-only guard of a reader connection; null on the writer.
  QueryGuard* guard() const { return guard_.get(); }
  void Guard() { guard_ = std::make_unique<QueryGuard>(db_); }

  // Returns the cached statement for `sql`, ready to bind.
  sqlite3_stmt* Statement(const std::string& sql) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second;

    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), int(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                &stmt, nullptr);
    if (rc != SQLITE_OK) {
      if (IsNoSuchTable(db_)) {
        throw Error(ErrorCode::kNotFound, std::string(sqlite3_errmsg(db_)));
      }
      Fail("cannot prepare \"" + sql + "\"");
    }
    statements_.emplace(sql, stmt);
    return stmt;
  }

  void Forget(const std::string& sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) return;
    sqlite3_finalize(it->second);
    statements_.erase(it);
  }

  void ClearStatements() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    statements_.clear();
  }

  void Exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string why = message != nullptr ? message : sqlite3_errmsg(db_);
      sqlite3_free(message);
      throw Error(ErrorCode::kStorage, "\"" + sql + "\" failed on " + Filename() + ": " + why);
    }
  }

  [[noreturn]] void Fail(const std::string& what) const {
    throw Error(ErrorCode::kStorage, what + " on " + Filename() + ": " + sqlite3_errmsg(db_));
  }

 private:
  std::string Filename() const {
    const char* name = sqlite3_db_filename(db_, "main");
    return name != nullptr ? name : "database";
  }

  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
  std::unique_ptr<QueryGuard> guard_;
};

// Resets a cached statement when the step that uses it ends, however it ends.
class Use {
 public:
  explicit Use(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Use() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  sqlite3_stmt* operator*() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

// Steps a statement once; returns true for a row, false when done.
bool StepRow(Connection& conn, sqlite3_stmt* stmt, std::string_view what) {
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  if (IsNoSuchTable(conn.db())) {
    throw Error(ErrorCode::kNotFound, std::string(sqlite3_errmsg(conn.db())));
  }
  conn.Fail(std::string(what) + " failed");
}

std::string UnknownCollection(std::string_view name) {
  return "unknown collection \"" + std::string(name) +
         "\"; create it first, or list the collections of this database";
}

}  // namespace

void CheckCollectionName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxNameLength &&
            !std::isdigit(static_cast<unsigned char>(name[0]));
  for (char c : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  }
  std::string lower(name);
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (lower.starts_with("sqlite_") || lower.starts_with("provdb_")) ok = false;

  if (!ok) {
    throw Error(ErrorCode::kInvalidArgument,
                "bad collection name \"" + std::string(name) +
                    "\": use 1 to 64 letters, digits or underscores, not starting with a "
                    "digit nor with \"sqlite_\" or \"provdb_\"");
  }
}

std::vector<std::string> DefaultIndexedFields(std::string_view collection) {
  if (collection == "anomalies" || collection == "normalexecs") {
    return {"pid", "rid", "tid", "fid", "io_step", "event_id"};
  }
  if (collection == "metadata") return {"rid", "descr"};
  if (collection == "func_stats") return {"app", "fid"};
  if (collection == "counter_stats") return {"app", "counter"};
  if (collection == "ad_model") return {"pid", "fid"};
  return {};
}

std::string ShardFileName(int shard) { return "provdb." + std::to_string(shard) + ".sqlite"; }

std::string GlobalFileName() { return "provdb.global.sqlite"; }

namespace {

// Prepares the documents of a batch in order on a helper thread, while the
// caller consumes them. Get(i) waits until document i is ready and rethrows
// the helper's error if a document up to i was refused.
class PreparingStream {
 public:
  PreparingStream(const std::vector<std::string_view>& docs, std::vector<std::string> fields,
                  std::size_t max_bytes)
      : docs_(docs), fields_(std::move(fields)), max_bytes_(max_bytes), out_(docs.size()),
        worker_([this](std::stop_token stop) { Run(stop); }) {}

  const PreparedDocument& Get(std::size_t i) {
    std::unique_lock lock(mutex_);
    ready_cv_.wait(lock, [&] { return ready_ > i || error_ != nullptr; });
    if (error_ != nullptr) std::rethrow_exception(error_);
    return out_[i];
  }

 private:
  // Documents are published in small groups: often enough that the consumer
  // rarely waits, rarely enough that the lock costs nothing.
  static constexpr std::size_t kPublishEvery = 8;

  void Run(std::stop_token stop) {
    const std::string of = " of " + std::to_string(docs_.size());
    for (std::size_t i = 0; i < docs_.size() && !stop.stop_requested(); ++i) {
      try {
        out_[i] = PrepareDocument(docs_[i], fields_, max_bytes_,
                                  "document " + std::to_string(i) + of);
      } catch (...) {
        std::lock_guard lock(mutex_);
        error_ = std::current_exception();
        ready_cv_.notify_all();
        return;
      }
      if ((i + 1) % kPublishEvery == 0 || i + 1 == docs_.size()) {
        std::lock_guard lock(mutex_);
        ready_ = i + 1;
        ready_cv_.notify_all();
      }
    }
  }

  const std::vector<std::string_view>& docs_;
  const std::vector<std::string> fields_;
  const std::size_t max_bytes_;
  // Element i is written by the helper before ready_ passes i, and read by
  // the consumer only after: the vector itself never changes size.
  std::vector<PreparedDocument> out_;

  std::mutex mutex_;
  std::condition_variable ready_cv_;
  std::size_t ready_ = 0;
  std::exception_ptr error_;

  // Last, so that it stops and joins before the members it uses go away.
  std::jthread worker_;
};

// Folds the WAL back into the database file on a thread of its own, so that
// the writer never waits for a checkpoint's copying and syncing. The writer
// asks for a checkpoint from its WAL hook after a commit; the checkpoint is
// PASSIVE, so it never blocks the writer or readers either.
class Checkpointer {
 public:
  explicit Checkpointer(std::filesystem::path path)
      : path_(std::move(path)), worker_([this](std::stop_token stop) { Run(stop); }) {}

  ~Checkpointer() {
    worker_.request_stop();
    wanted_cv_.notify_all();
  }

  void Request() {
    {
      std::lock_guard lock(mutex_);
      wanted_ = true;
    }
    wanted_cv_.notify_one();
  }

  // Held while a background checkpoint runs. SQLite lets one checkpoint run
  // at a time and fails the others with SQLITE_BUSY, so an explicit
  // checkpoint takes it to wait its turn instead.
  std::mutex& running() { return running_; }

 private:
  void Run(std::stop_token stop) {
    std::unique_ptr<Connection> conn;
    while (true) {
      {
        std::unique_lock lock(mutex_);
        wanted_cv_.wait(lock, stop, [&] { return wanted_; });
        if (stop.stop_requested()) return;
        wanted_ = false;
      }

      // A failed checkpoint (the disk is busy, a reader holds old frames)
      // is left for the next request or for closing: nothing depends on it.
      try {
        if (conn == nullptr) {
          conn = std::make_unique<Connection>(path_, SQLITE_OPEN_READWRITE);
          // A connection finds out that the file is in WAL mode only when it
          // first reads it; until then a checkpoint on it does nothing.
          conn->Exec("SELECT count(*) FROM sqlite_master");
        }
        std::lock_guard running(running_);
        sqlite3_wal_checkpoint_v2(conn->db(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                  nullptr);
      } catch (const Error&) {
        conn.reset();
      }
    }
  }

  const std::filesystem::path path_;
  std::mutex mutex_;
  std::condition_variable_any wanted_cv_;
  bool wanted_ = false;
  std::mutex running_;
  // Last, so that it stops and joins before the members it uses go away.
  std::jthread worker_;
};

// Called by SQLite on the writer's thread after each commit with the number
// of pages in the WAL.
int WalHook(void* checkpointer, sqlite3* db, const char*, int pages) {
  if (pages >= kWalCheckpointPages) static_cast<Checkpointer*>(checkpointer)->Request();

  // If the background checkpoints cannot keep up (readers pinning old
  // frames, a slow disk), the writer does one itself so the WAL stays
  // bounded.
  if (pages >= kWalWriterCheckpointPages) {
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
  return SQLITE_OK;
}

}  // namespace

// ---------------------------------------------------------------------------

struct Database::Impl {
  std::filesystem::path path;
  Options options;

  // The writer connection, null when the database is opened read-only.
  std::mutex writer_mutex;
  std::unique_ptr<Connection> writer;
  std::unique_ptr<Checkpointer> checkpointer;

  // Idle read-only connections. A reader takes one (or opens a new one) and
  // gives it back when done, so there are as many as the most concurrent
  // readers ever were.
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<Connection>> idle_readers;

  // A read-only connection leased to one thread for one call.
  class Reader {
   public:
    explicit Reader(Impl& impl) : impl_(impl), conn_(impl.TakeReader()) {}
    ~Reader() { impl_.GiveBackReader(std::move(conn_)); }
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    Connection& operator*() { return *conn_; }
    Connection* operator->() { return conn_.get(); }

   private:
    Impl& impl_;
    std::unique_ptr<Connection> conn_;
  };

  // What the database knows of one collection.
  struct CollectionInfo {
    int64_t next_id = 0;
    std::vector<std::string> indexed;
  };

  std::unique_ptr<Connection> TakeReader() {
    {
      std::lock_guard lock(pool_mutex);
      if (!idle_readers.empty()) {
        auto conn = std::move(idle_readers.back());
        idle_readers.pop_back();
        return conn;
      }
    }
    auto conn = std::make_unique<Connection>(path, SQLITE_OPEN_READONLY);
    conn->Guard();

    // A query may build values (zeroblob, printf, group_concat) far larger
    // than any stored document; cap them so that one query cannot take the
    // process's memory. Twice the document limit leaves room for documents
    // read back whole and for small aggregates over them.
    auto max_value = std::min<std::size_t>(2 * options.max_document_bytes + (1u << 20),
                                           std::size_t{1} << 30);
    sqlite3_limit(conn->db(), SQLITE_LIMIT_LENGTH, int(max_value));
    return conn;
  }

  void GiveBackReader(std::unique_ptr<Connection> conn) {
    if (conn == nullptr) return;
    std::lock_guard lock(pool_mutex);
    idle_readers.push_back(std::move(conn));
  }

  Connection& Writer() {
    if (writer == nullptr) {
      throw Error(ErrorCode::kInvalidArgument,
                  "database " + path.string() + " is open read-only; reopen it writable to "
                  "change it");
    }
    return *writer;
  }

  // Reads what provdb_collections says of a collection on `conn`.
  static std::optional<CollectionInfo> Info(Connection& conn, std::string_view name) {
    Use stmt(conn.Statement("SELECT next_id, indexed FROM provdb_collections WHERE name = ?"));
    sqlite3_bind_text(*stmt, 1, name.data(), int(name.size()), SQLITE_STATIC);
    if (!StepRow(conn, *stmt, "reading the collection list")) return std::nullopt;
    CollectionInfo info;
    info.next_id = sqlite3_column_int64(*stmt, 0);
    info.indexed = SplitFields(ColumnText(*stmt, 1));
    return info;
  }

  static CollectionInfo RequireInfo(Connection& conn, std::string_view name) {
    CheckCollectionName(name);
    auto info = Info(conn, name);
    if (!info) throw Error(ErrorCode::kNotFound, UnknownCollection(name));
    return *info;
  }

  // A write transaction on the writer connection; rolled back unless
  // committed. The caller holds writer_mutex.
  class Transaction {
   public:
    explicit Transaction(Connection& conn) : conn_(conn) {
      Use begin(conn_.Statement("BEGIN IMMEDIATE"));
      if (sqlite3_step(*begin) != SQLITE_DONE) conn_.Fail("cannot start a write transaction");
    }
    ~Transaction() {
      if (!done_) {
        Use rollback(conn_.Statement("ROLLBACK"));
        sqlite3_step(*rollback);
      }
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    void Commit() {
      Use commit(conn_.Statement("COMMIT"));
      if (sqlite3_step(*commit) != SQLITE_DONE) conn_.Fail("cannot commit");
      done_ = true;
    }

   private:
    Connection& conn_;
    bool done_ = false;
  };

  void SetNextId(Connection& conn, std::string_view name, int64_t next_id) {
    Use stmt(conn.Statement("UPDATE provdb_collections SET next_id = ? WHERE name = ?"));
    sqlite3_bind_int64(*stmt, 1, next_id);
    sqlite3_bind_text(*stmt, 2, name.data(), int(name.size()), SQLITE_STATIC);
    StepRow(conn, *stmt, "saving the next record id");
  }

  static std::string InsertSql(std::string_view name, const std::vector<std::string>& fields) {
    std::string sql = "INSERT INTO " + Quoted(name) + "(\"__id\", doc";
    std::string values = "?, ?";
    for (const std::string& f : fields) {
      sql += ", " + Quoted(f);
      values += ", ?";
    }
    return sql + ") VALUES (" + values + ")";
  }

  static std::string UpdateSql(std::string_view name, const std::vector<std::string>& fields) {
    std::string sql = "UPDATE " + Quoted(name) + " SET doc = ?";
    for (const std::string& f : fields) sql += ", " + Quoted(f) + " = ?";
    return sql + " WHERE \"__id\" = ?";
  }

  // Makes sure the documents carry the values of the collection's current
  // indexed fields; they may have been prepared before an index was added.
  void Reprepare(std::vector<PreparedDocument>& docs, const std::vector<std::string>& fields) {
    for (PreparedDocument& doc : docs) {
      if (doc.indexed.size() == fields.size()) continue;
      doc = PrepareDocument(doc.json, fields, std::numeric_limits<std::size_t>::max());
    }
  }

  // Inserts `count` documents, the i-th given by get(i), inside the caller's
  // transaction, with ids from info.next_id on.
  template <typename GetFn>
  std::vector<int64_t> InsertFrom(Connection& conn, std::string_view name, CollectionInfo& info,
                                  std::size_t count, GetFn&& get) {
    std::vector<int64_t> ids;
    ids.reserve(count);
    sqlite3_stmt* insert = conn.Statement(InsertSql(name, info.indexed));
    for (std::size_t d = 0; d < count; ++d) {
      const PreparedDocument& doc = get(d);
      Use stmt(insert);
      int64_t id = info.next_id++;
      sqlite3_bind_int64(*stmt, 1, id);
      sqlite3_bind_text(*stmt, 2, doc.json.data(), int(doc.json.size()), SQLITE_STATIC);
      for (std::size_t i = 0; i < doc.indexed.size(); ++i) Bind(*stmt, int(i) + 3, doc.indexed[i]);
      StepRow(conn, *stmt, "storing a document in " + std::string(name));
      ids.push_back(id);
    }
    SetNextId(conn, name, info.next_id);
    return ids;
  }

  // Inserts prepared documents inside the caller's transaction.
  std::vector<int64_t> Insert(Connection& conn, std::string_view name,
                              std::vector<PreparedDocument>& docs) {
    CollectionInfo info = RequireInfo(conn, name);
    Reprepare(docs, info.indexed);
    return InsertFrom(conn, name, info, docs.size(),
                      [&](std::size_t d) -> const PreparedDocument& { return docs[d]; });
  }

  // Stores a large batch with validation on a helper thread running ahead of
  // the inserts, so that parsing and SQL overlap. A bad document fails the
  // transaction, which rolls back: the batch still stores nothing.
  std::vector<int64_t> StorePipelined(std::string_view name,
                                      const std::vector<std::string_view>& docs) {
    CheckCollectionName(name);
    std::lock_guard lock(writer_mutex);
    Connection& conn = Writer();
    Transaction txn(conn);
    CollectionInfo info = RequireInfo(conn, name);

    PreparingStream stream(docs, info.indexed, options.max_document_bytes);
    std::vector<int64_t> ids = InsertFrom(
        conn, name, info, docs.size(),
        [&](std::size_t d) -> const PreparedDocument& { return stream.Get(d); });
    txn.Commit();
    return ids;
  }

  // The limits of one user statement: the call's, else the database's.
  RunLimits Limits(QueryLimits limits) const {
    RunLimits run;
    run.time = limits.time_limit.count() > 0 ? limits.time_limit : options.query_time_limit;
    run.rows = limits.row_limit > 0 ? limits.row_limit : options.query_row_limit;
    run.bytes = options.query_byte_limit;
    return run;
  }
};

// ---------------------------------------------------------------------------

Database::Database(const std::filesystem::path& path, Options options)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->options = options;

  bool exists = std::filesystem::exists(path);
  if (!exists && (!options.create || options.read_only)) {
    throw Error(ErrorCode::kNotFound,
                "database file " + path.string() + " does not exist; check the path");
  }

  if (options.read_only) {
    // Opening one reader now checks the file before any call needs it.
    Impl::Reader reader(*impl_);
    Use stmt(reader->Statement("SELECT count(*) FROM sqlite_master WHERE name = "
                               "'provdb_collections'"));
    if (!StepRow(*reader, *stmt, "reading the schema") || sqlite3_column_int(*stmt, 0) != 1) {
      throw Error(ErrorCode::kStorage, path.string() + " is not a provdb database");
    }
    return;
  }

  auto conn = std::make_unique<Connection>(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int app_id = 0;
  {
    Use stmt(conn->Statement("PRAGMA application_id"));
    if (StepRow(*conn, *stmt, "reading the file header")) app_id = sqlite3_column_int(*stmt, 0);
  }
  int tables = 0;
  {
    Use stmt(conn->Statement("SELECT count(*) FROM sqlite_master"));
    if (StepRow(*conn, *stmt, "reading the schema")) tables = sqlite3_column_int(*stmt, 0);
  }
  if (app_id != kApplicationId && tables > 0) {
    throw Error(ErrorCode::kStorage, path.string() +
                                         " is an SQLite file but not a provdb database; "
                                         "give the path of a provdb file or a new one");
  }
  conn->ClearStatements();

  conn->Exec("PRAGMA journal_mode = WAL");
  conn->Exec(options.durability == Durability::kSafe ? "PRAGMA synchronous = FULL"
                                                     : "PRAGMA synchronous = NORMAL");
  // 16 MiB of page cache keeps the indexes of a busy collection in memory.
  conn->Exec("PRAGMA cache_size = -16384");
  conn->Exec("PRAGMA application_id = " + std::to_string(kApplicationId));
  conn->Exec(
      "CREATE TABLE IF NOT EXISTS provdb_collections ("
      "name TEXT PRIMARY KEY, next_id INTEGER NOT NULL, indexed TEXT NOT NULL)");
  impl_->checkpointer = std::make_unique<Checkpointer>(path);
  sqlite3_wal_hook(conn->db(), WalHook, impl_->checkpointer.get());
  impl_->writer = std::move(conn);
}

Database::~Database() {
  impl_->checkpointer.reset();
  impl_->idle_readers.clear();
  if (impl_->writer == nullptr) return;

  // Without readers left, a TRUNCATE checkpoint folds the whole WAL into the
  // file and empties it, so the file alone is consistent.
  impl_->writer->ClearStatements();
  sqlite3_wal_checkpoint_v2(impl_->writer->db(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                            nullptr);
  impl_->writer.reset();
}

const std::filesystem::path& Database::path() const { return impl_->path; }

const Options& Database::options() const { return impl_->options; }

// --- collections -----------------------------------------------------------

void Database::create_collection(std::string_view name, bool if_missing) {
  CheckCollectionName(name);
  std::lock_guard lock(impl_->writer_mutex);
  Connection& conn = impl_->Writer();
  Impl::Transaction txn(conn);

  if (Impl::Info(conn, name)) {
    if (if_missing) return;
    throw Error(ErrorCode::kAlreadyExists,
                "collection \"" + std::string(name) + "\" already exists");
  }

  std::vector<std::string> fields = DefaultIndexedFields(name);
  // Indexed columns have no declared type, so they keep each value as bound,
  // exactly as json_extract() returns it.
  std::string create = "CREATE TABLE " + Quoted(name) + " (\"__id\" INTEGER PRIMARY KEY, "
                       "doc TEXT NOT NULL";
  for (const std::string& f : fields) create += ", " + Quoted(f);
  conn.Exec(create + ")");
  for (const std::string& f : fields) {
    conn.Exec("CREATE INDEX " + IndexName(name, f) + " ON " + Quoted(name) + "(" + Quoted(f) +
              ")");
  }

  Use insert(conn.Statement(
      "INSERT INTO provdb_collections(name, next_id, indexed) VALUES (?, 0, ?)"));
  std::string joined = JoinFields(fields);
  sqlite3_bind_text(*insert, 1, name.data(), int(name.size()), SQLITE_STATIC);
  sqlite3_bind_text(*insert, 2, joined.data(), int(joined.size()), SQLITE_STATIC);
  StepRow(conn, *insert, "registering collection " + std::string(name));
  txn.Commit();
}

bool Database::collection_exists(std::string_view name) const {
  CheckCollectionName(name);
  Impl::Reader reader(*impl_);
  return Impl::Info(*reader, name).has_value();
}

std::vector<std::string> Database::list_collections() const {
  Impl::Reader reader(*impl_);
  Use stmt(reader->Statement("SELECT name FROM provdb_collections ORDER BY name"));
  std::vector<std::string> names;
  while (StepRow(*reader, *stmt, "listing collections")) {
    names.emplace_back(ColumnText(*stmt, 0));
  }
  return names;
}

void Database::drop_collection(std::string_view name) {
  CheckCollectionName(name);
  std::lock_guard lock(impl_->writer_mutex);
  Connection& conn = impl_->Writer();
  Impl::Transaction txn(conn);
  Impl::RequireInfo(conn, name);

  conn.Exec("DROP TABLE " + Quoted(name));
  // Statements compiled against the table must not outlive it.
  conn.ClearStatements();
  Use erase(conn.Statement("DELETE FROM provdb_collections WHERE name = ?"));
  sqlite3_bind_text(*erase, 1, name.data(), int(name.size()), SQLITE_STATIC);
  StepRow(conn, *erase, "unregistering collection " + std::string(name));
  txn.Commit();
}

void Database::create_index(std::string_view collection, std::string_view field) {
  CheckFieldName(field);
  std::lock_guard lock(impl_->writer_mutex);
  Connection& conn = impl_->Writer();
  Impl::Transaction txn(conn);
  Impl::CollectionInfo info = Impl::RequireInfo(conn, collection);
  std::string f(field);
  if (std::find(info.indexed.begin(), info.indexed.end(), f) != info.indexed.end()) return;

  // SQLite's own json_extract() fills the column for stored records: the
  // values are by definition the ones a filter on the document would see.
  conn.Exec("ALTER TABLE " + Quoted(collection) + " ADD COLUMN " + Quoted(f));
  conn.Exec("UPDATE " + Quoted(collection) + " SET " + Quoted(f) + " = json_extract(doc, '$.\"" +
            f + "\"')");
  conn.Exec("CREATE INDEX " + IndexName(collection, f) + " ON " + Quoted(collection) + "(" +
            Quoted(f) + ")");

  info.indexed.push_back(f);
  Use update(conn.Statement("UPDATE provdb_collections SET indexed = ? WHERE name = ?"));
  std::string joined = JoinFields(info.indexed);
  sqlite3_bind_text(*update, 1, joined.data(), int(joined.size()), SQLITE_STATIC);
  sqlite3_bind_text(*update, 2, collection.data(), int(collection.size()), SQLITE_STATIC);
  StepRow(conn, *update, "saving the indexed fields of " + std::string(collection));
  txn.Commit();
}

std::vector<std::string> Database::indexed_fields(std::string_view collection) const {
  Impl::Reader reader(*impl_);
  return Impl::RequireInfo(*reader, collection).indexed;
}

// --- writes ----------------------------------------------------------------

int64_t Database::store(std::string_view collection, std::string_view json) {
  return store_multi(collection, {json}).front();
}

std::vector<int64_t> Database::store_multi(std::string_view collection,
                                           const std::vector<std::string_view>& docs) {
  std::size_t bytes = 0;
  for (std::string_view doc : docs) bytes += doc.size();
  if (docs.size() >= kPipelineMinDocs && bytes >= kPipelineMinBytes) {
    return impl_->StorePipelined(collection, docs);
  }

  // Parsing happens before taking the writer, so that concurrent writers
  // only queue for the SQL.
  std::vector<PreparedBatch> batches(1);
  batches[0].collection = std::string(collection);
  batches[0].docs =
      PrepareBatch(docs, indexed_fields(collection), impl_->options.max_document_bytes);
  return std::move(store_batches(std::move(batches)).front());
}

std::vector<std::vector<int64_t>> Database::store_batches(std::vector<PreparedBatch> batches) {
  std::lock_guard lock(impl_->writer_mutex);
  Connection& conn = impl_->Writer();
  for (const PreparedBatch& batch : batches) {
    CheckCollectionName(batch.collection);
  }

  Impl::Transaction txn(conn);
  for (const PreparedBatch& batch : batches) Impl::RequireInfo(conn, batch.collection);
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(batches.size());
  for (PreparedBatch& batch : batches) {
    ids.push_back(impl_->Insert(conn, batch.collection, batch.docs));
  }
  txn.Commit();
  return ids;
}

bool Database::update(std::string_view collection, int64_t id, std::string_view json) {
  return update_multi(collection, {{id, json}}).front();
}

std::vector<bool> Database::update_multi(
    std::string_view collection, const std::vector<std::pair<int64_t, std::string_view>>& docs) {
  std::vector<std::string_view> texts;
  texts.reserve(docs.size());
  for (const auto& [id, json] : docs) texts.push_back(json);
  std::vector<PreparedDocument> prepared =
      PrepareBatch(texts, indexed_fields(collection), impl_->options.max_document_bytes);

  std::lock_guard lock(impl_->writer_mutex);
  Connection& conn = impl_->Writer();
  Impl::Transaction txn(conn);
  Impl::CollectionInfo info = Impl::RequireInfo(conn, collection);
  impl_->Reprepare(prepared, info.indexed);

  std::vector<bool> existed;
  existed.reserve(docs.size());
  sqlite3_stmt* update = conn.Statement(Impl::UpdateSql(collection, info.indexed));
  for (std::size_t d = 0; d < prepared.size(); ++d) {
    Use stmt(update);
    const PreparedDocument& doc = prepared[d];
    sqlite3_bind_text(*stmt, 1, doc.json.data(), int(doc.json.size()), SQLITE_STATIC);
    for (std::size_t i = 0; i < doc.indexed.size(); ++i) Bind(*stmt, int(i) + 2, doc.indexed[i]);
    sqlite3_bind_int64(*stmt, int(doc.indexed.size()) + 2, docs[d].first);
    StepRow(conn, *stmt, "updating a document in " + std::string(collection));
    existed.push_back(sqlite3_changes(conn.db()) > 0);
  }
  txn.Commit();
  return existed;
}

bool Database::erase(std::string_view collection, int64_t id) {
  return erase_multi(collection, {id}).front();
}

std::vector<bool> Database::erase_multi(std::string_view collection,
                                        const std::vector<int64_t>& ids) {
  std::lock_guard lock(impl_->writer_mutex);
  Connection& conn = impl_->Writer();
  Impl::Transaction txn(conn);
  Impl::RequireInfo(conn, collection);

  std::vector<bool> existed;
  existed.reserve(ids.size());
  sqlite3_stmt* erase =
      conn.Statement("DELETE FROM " + Quoted(collection) + " WHERE \"__id\" = ?");
  for (int64_t id : ids) {
    Use stmt(erase);
    sqlite3_bind_int64(*stmt, 1, id);
    StepRow(conn, *stmt, "erasing a document from " + std::string(collection));
    existed.push_back(sqlite3_changes(conn.db()) > 0);
  }
  txn.Commit();
  return existed;
}

// --- reads -----------------------------------------------------------------

Record Database::fetch(std::string_view collection, int64_t id) const {
  auto records = fetch_multi(collection, {id});
  if (!records.front()) {
    throw Error(ErrorCode::kNotFound, "no record " + std::to_string(id) + " in collection \"" +
                                          std::string(collection) + "\"");
  }
  return std::move(*records.front());
}

std::vector<std::optional<Record>> Database::fetch_multi(std::string_view collection,
                                                         const std::vector<int64_t>& ids) const {
  CheckCollectionName(collection);
  Impl::Reader reader(*impl_);
  std::string sql = "SELECT doc FROM " + Quoted(collection) + " WHERE \"__id\" = ?";

  std::vector<std::optional<Record>> records;
  records.reserve(ids.size());
  try {
    sqlite3_stmt* fetch = reader->Statement(sql);
    for (int64_t id : ids) {
      Use stmt(fetch);
      sqlite3_bind_int64(*stmt, 1, id);
      if (StepRow(*reader, *stmt, "fetching a record")) {
        records.emplace_back(Record{id, WithRecordId(ColumnText(*stmt, 0), id)});
      } else {
        records.emplace_back(std::nullopt);
      }
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNotFound) throw;
    reader->Forget(sql);
    throw Error(ErrorCode::kNotFound, UnknownCollection(collection));
  }
  return records;
}

std::vector<Record> Database::all(std::string_view collection) const {
  CheckCollectionName(collection);
  Impl::Reader reader(*impl_);
  std::string sql = "SELECT \"__id\", doc FROM " + Quoted(collection) + " ORDER BY \"__id\"";

  std::vector<Record> records;
  try {
    Use stmt(reader->Statement(sql));
    while (StepRow(*reader, *stmt, "reading all records")) {
      int64_t id = sqlite3_column_int64(*stmt, 0);
      records.push_back(Record{id, WithRecordId(ColumnText(*stmt, 1), id)});
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNotFound) throw;
    reader->Forget(sql);
    throw Error(ErrorCode::kNotFound, UnknownCollection(collection));
  }
  return records;
}

int64_t Database::size(std::string_view collection) const {
  CheckCollectionName(collection);
  Impl::Reader reader(*impl_);
  std::string sql = "SELECT count(*) FROM " + Quoted(collection);
  try {
    Use stmt(reader->Statement(sql));
    StepRow(*reader, *stmt, "counting records");
    return sqlite3_column_int64(*stmt, 0);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNotFound) throw;
    reader->Forget(sql);
    throw Error(ErrorCode::kNotFound, UnknownCollection(collection));
  }
}

std::optional<int64_t> Database::last_record_id(std::string_view collection) const {
  Impl::Reader reader(*impl_);
  Impl::CollectionInfo info = Impl::RequireInfo(*reader, collection);
  if (info.next_id == 0) return std::nullopt;
  return info.next_id - 1;
}

// --- queries ---------------------------------------------------------------

std::vector<Record> Database::filter(std::string_view collection, std::string_view expression,
                                     QueryLimits limits) const {
  Impl::Reader reader(*impl_);
  Impl::CollectionInfo info = Impl::RequireInfo(*reader, collection);
  std::string sql = "SELECT \"__id\", doc FROM " + Quoted(collection) + " WHERE (" +
                    TranslateFilter(expression, info.indexed) + ") ORDER BY \"__id\"";
  std::string what = "filter \"" + std::string(expression) + "\" on " + std::string(collection);

  QueryGuard& guard = *reader->guard();
  StatementPtr owner = guard.Compile(sql, what);
  sqlite3_stmt* stmt = owner.get();
  std::vector<Record> records;
  guard.Run(stmt, what, impl_->Limits(limits), [&](sqlite3_stmt* row) {
    int64_t id = sqlite3_column_int64(row, 0);
    records.push_back(Record{id, WithRecordId(ColumnText(row, 1), id)});
  });
  return records;
}

int64_t Database::count(std::string_view collection, std::string_view expression,
                        QueryLimits limits) const {
  Impl::Reader reader(*impl_);
  Impl::CollectionInfo info = Impl::RequireInfo(*reader, collection);
  std::string sql = "SELECT count(*) FROM " + Quoted(collection) + " WHERE (" +
                    TranslateFilter(expression, info.indexed) + ")";
  std::string what = "filter \"" + std::string(expression) + "\" on " + std::string(collection);

  QueryGuard& guard = *reader->guard();
  StatementPtr owner = guard.Compile(sql, what);
  sqlite3_stmt* stmt = owner.get();
  int64_t n = 0;
  guard.Run(stmt, what, impl_->Limits(limits),
            [&](sqlite3_stmt* row) { n = sqlite3_column_int64(row, 0); });
  return n;
}

QueryResult Database::query(std::string_view sql, QueryLimits limits) const {
  Impl::Reader reader(*impl_);
  std::string text(sql);
  std::string what = "query \"" + text + "\"";

  QueryGuard& guard = *reader->guard();
  StatementPtr owner = guard.Compile(text, what);
  sqlite3_stmt* stmt = owner.get();
  QueryResult result;
  int columns = sqlite3_column_count(stmt);
  for (int c = 0; c < columns; ++c) result.columns.emplace_back(sqlite3_column_name(stmt, c));

  guard.Run(stmt, what, impl_->Limits(limits), [&](sqlite3_stmt* row) {
    std::vector<SqlValue> values;
    values.reserve(std::size_t(columns));
    for (int c = 0; c < columns; ++c) values.push_back(ColumnValue(row, c));
    result.rows.push_back(std::move(values));
  });
  return result;
}

void Database::checkpoint() {
  std::lock_guard lock(impl_->writer_mutex);
  Connection& conn = impl_->Writer();
  std::lock_guard running(impl_->checkpointer->running());
  int rc = sqlite3_wal_checkpoint_v2(conn.db(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                     nullptr);
  if (rc != SQLITE_OK) conn.Fail("checkpoint failed");
}

}  // namespace provdb::storage
