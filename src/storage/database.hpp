// A database of provdb: one SQLite file holding named collections of JSON
// documents. Each shard of the anomaly database and the global database is
// one Database.
//
// Threads: a Database is shared by all threads of a process. Writes (create,
// drop, store, update, erase, create_index) are serialized on one writer
// connection; reads (fetch, all, size, filter, query, list) run concurrently,
// each on a read-only connection of its own taken from a pool, and never wait
// for the writer (WAL mode). Every method may be called from any thread.
// A Database also runs one thread of its own, which folds the WAL back into
// the file in the background so that writers do not wait for checkpoints,
// and store_multi() of a large batch validates it on a short-lived helper
// thread while inserting.
//
// Layout in the file: a table per collection, named as the collection, with
// columns "__id" (INTEGER PRIMARY KEY, the record id), "doc" (the JSON text as
// received), and one column per indexed field, named as the field and filled
// from the document on store and update. A table "provdb_collections" keeps
// each collection's next record id and indexed fields, so that ids are never
// reused, even after the last record is erased.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/document.hpp"

namespace provdb::storage {

enum class Durability {
  // WAL with synchronous=NORMAL: a committed write survives a crash of the
  // process (it is in the operating system's cache), but the last commits
  // may be lost if the machine loses power.
  kFast,
  // WAL with synchronous=FULL: every commit is on disk before it returns,
  // and survives power loss.
  kSafe,
};

struct Options {
  Durability durability = Durability::kFast;
  std::size_t max_document_bytes = kDefaultMaxDocumentBytes;
  // Limits of filter() and query() unless the call gives its own.
  std::chrono::milliseconds query_time_limit{10'000};
  std::size_t query_row_limit = 1'000'000;
  // Bytes of values one filter() or query() may return in all, so that a
  // hostile or careless query cannot exhaust the memory of a server.
  std::size_t query_byte_limit = std::size_t{512} << 20;
  // Create the file if it does not exist; otherwise opening a missing file
  // fails with kNotFound.
  bool create = true;
  // Open for reading only (query tools on the files of a finished run).
  bool read_only = false;
};

struct QueryLimits {
  std::chrono::milliseconds time_limit{0};  // 0: the database's default
  std::size_t row_limit = 0;                // 0: the database's default
};

// A stored document read back: its record id and its JSON text, which
// carries "__id" as its first member.
struct Record {
  int64_t id = 0;
  std::string json;
};

// The result of a raw SELECT: column names and rows of values.
struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<SqlValue>> rows;
};

// A batch of prepared documents for one collection, for store_batches().
struct PreparedBatch {
  std::string collection;
  std::vector<PreparedDocument> docs;
};

// Checks a collection name: 1 to 64 letters, digits or underscores, not
// starting with a digit and not using the reserved prefixes "sqlite_" and
// "provdb_". Throws Error(kInvalidArgument) naming the bad name.
void CheckCollectionName(std::string_view name);

// The fields indexed by default in a collection of that name: pid, rid, tid,
// fid, io_step, event_id for anomalies and normalexecs; rid and descr for
// metadata; the identifying fields of the global collections; none otherwise.
std::vector<std::string> DefaultIndexedFields(std::string_view collection);

// The file name of shard k ("provdb.<k>.sqlite") and of the global database
// ("provdb.global.sqlite").
std::string ShardFileName(int shard);
std::string GlobalFileName();

class Database {
 public:
  // Opens (or creates) the file at `path`. Throws Error(kStorage) when the
  // file cannot be opened or is not a provdb database.
  Database(const std::filesystem::path& path, Options options = {});
  // Folds the WAL back into the file and closes it. Callers must not be
  // inside any method of this object any more.
  ~Database();

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::filesystem::path& path() const;
  const Options& options() const;

  // --- collections ---
  // Creates a collection; its indexed fields are DefaultIndexedFields(name).
  // Throws kAlreadyExists unless `if_missing` is true.
  void create_collection(std::string_view name, bool if_missing = false);
  bool collection_exists(std::string_view name) const;
  std::vector<std::string> list_collections() const;
  // Throws kNotFound for an unknown collection.
  void drop_collection(std::string_view name);
  // Adds an indexed field to a collection (filling it for stored records);
  // nothing happens if it is indexed already. Field names follow the rule of
  // collection names and may not be "doc" or "__id" (kInvalidArgument).
  void create_index(std::string_view collection, std::string_view field);
  // The indexed fields of a collection, in column order.
  std::vector<std::string> indexed_fields(std::string_view collection) const;

  // --- writes ---
  // Every write of documents validates them all before it commits; a refused
  // document (kBadDocument) or an unknown collection (kNotFound) stores
  // nothing and consumes no record id.
  int64_t store(std::string_view collection, std::string_view json);
  std::vector<int64_t> store_multi(std::string_view collection,
                                   const std::vector<std::string_view>& docs);
  // Stores batches prepared with PrepareBatch() in one transaction and
  // returns their ids batch by batch. Unknown collections fail the whole call
  // before anything is written.
  std::vector<std::vector<int64_t>> store_batches(std::vector<PreparedBatch> batches);

  // Replaces the document with that id; returns false if there was none.
  bool update(std::string_view collection, int64_t id, std::string_view json);
  // Returns, for each id, whether it existed (and so was updated).
  std::vector<bool> update_multi(std::string_view collection,
                                 const std::vector<std::pair<int64_t, std::string_view>>& docs);
  // Returns whether a record with that id existed.
  bool erase(std::string_view collection, int64_t id);
  std::vector<bool> erase_multi(std::string_view collection, const std::vector<int64_t>& ids);

  // --- reads ---
  // Throws kNotFound when there is no record with that id.
  Record fetch(std::string_view collection, int64_t id) const;
  // One entry per id, in order; nullopt where there is no record.
  std::vector<std::optional<Record>> fetch_multi(std::string_view collection,
                                                 const std::vector<int64_t>& ids) const;
  // All records in id order.
  std::vector<Record> all(std::string_view collection) const;
  int64_t size(std::string_view collection) const;
  // The id of the last record ever stored, or nullopt if none was.
  std::optional<int64_t> last_record_id(std::string_view collection) const;

  // --- queries (read-only by construction) ---
  // Records of `collection` for which `expression` is true, in id order.
  // `expression` is an SQLite boolean expression in which fields are named
  // directly (fid = 500), nested values by path (gpu_location.device,
  // call_stack[0].func, or "a field with spaces"); see docs/query.md.
  // Throws kQuerySyntax, kQueryRefused or kQueryLimit.
  std::vector<Record> filter(std::string_view collection, std::string_view expression,
                             QueryLimits limits = {}) const;
  // Counts the records matching `expression` without reading them.
  int64_t count(std::string_view collection, std::string_view expression,
                QueryLimits limits = {}) const;
  // One read-only SELECT (or WITH ... SELECT) over the tables of this
  // database. Writes, ATTACH, PRAGMA and more than one statement are refused
  // (kQueryRefused); a query running past its time limit or returning more
  // rows than its row limit fails with kQueryLimit.
  QueryResult query(std::string_view sql, QueryLimits limits = {}) const;

  // Folds the WAL into the database file now, as far as readers allow
  // (a passive checkpoint; closing does a complete one).
  void checkpoint();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace provdb::storage
