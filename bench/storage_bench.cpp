// Benchmarks of the storage layer on the bundled real records: batch store
// against a bare SQLite insert loop of the same bytes, fetch by id, an
// indexed filter and a full-scan filter. Single-threaded; each store run
// writes a fresh file in a temporary directory.
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>

#include "storage/database.hpp"
#include "test_data.hpp"

namespace provdb::storage {
namespace {

// Documents per transaction, about what an AD instance sends at once.
constexpr std::size_t kBatch = 500;

const std::vector<std::string>& Lines(const std::string& collection) {
  static std::map<std::string, std::vector<std::string>> cache;
  auto it = cache.find(collection);
  if (it == cache.end()) {
    it = cache.emplace(collection, provdb::testing::LoadRecords(collection)).first;
  }
  return it->second;
}

std::size_t TotalBytes(const std::vector<std::string>& lines) {
  std::size_t bytes = 0;
  for (const auto& line : lines) bytes += line.size();
  return bytes;
}

// A scratch directory for the run, removed at exit.
const std::filesystem::path& ScratchDir() {
  static struct Dir {
    std::filesystem::path path;
    Dir() {
      path = std::filesystem::temp_directory_path() /
             ("provdb-storage-bench-" + std::to_string(std::random_device()()));
      std::filesystem::create_directories(path);
    }
    ~Dir() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  } dir;
  return dir.path;
}

void RemoveDatabase(const std::filesystem::path& file) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(file.string() + suffix);
  }
}

void SetStoreCounters(benchmark::State& state, const std::vector<std::string>& lines) {
  double docs = double(lines.size()) * double(state.iterations());
  double bytes = double(TotalBytes(lines)) * double(state.iterations());
  state.counters["docs/s"] = benchmark::Counter(docs, benchmark::Counter::kIsRate);
  state.counters["MB/s"] = benchmark::Counter(bytes / 1e6, benchmark::Counter::kIsRate);
}

// Database::store_multi of a whole collection in batches, validation and
// index maintenance included. With `timed_close`, closing (the final
// checkpoint that folds the WAL into the file) is timed too.
void BM_Store(benchmark::State& state, const std::string& collection, bool timed_close) {
  const auto& lines = Lines(collection);
  std::filesystem::path file = ScratchDir() / "store.sqlite";

  for (auto _ : state) {
    state.PauseTiming();
    RemoveDatabase(file);
    auto db = std::make_unique<Database>(file);
    db->create_collection(collection);
    state.ResumeTiming();

    for (std::size_t at = 0; at < lines.size(); at += kBatch) {
      std::size_t end = std::min(at + kBatch, lines.size());
      std::vector<std::string_view> batch(lines.begin() + long(at), lines.begin() + long(end));
      benchmark::DoNotOptimize(db->store_multi(collection, batch));
    }

    if (!timed_close) state.PauseTiming();
    db.reset();
    if (!timed_close) state.ResumeTiming();
  }
  SetStoreCounters(state, lines);
}

void Check(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    throw std::runtime_error(std::string(what) + ": " + sqlite3_errmsg(db));
  }
}

// The reference: the same bytes into a table of id and text with plain
// SQLite, the same pragmas and the same transactions, nothing else.
void BM_BareSqliteInsert(benchmark::State& state, const std::string& collection,
                         bool timed_close) {
  const auto& lines = Lines(collection);
  std::filesystem::path file = ScratchDir() / "bare.sqlite";

  for (auto _ : state) {
    state.PauseTiming();
    RemoveDatabase(file);
    sqlite3* db = nullptr;
    Check(db, sqlite3_open_v2(file.c_str(), &db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                              nullptr),
          "open");
    Check(db, sqlite3_exec(db, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr), "wal");
    Check(db, sqlite3_exec(db, "PRAGMA synchronous = NORMAL", nullptr, nullptr, nullptr),
          "synchronous");
    Check(db, sqlite3_exec(db, "PRAGMA cache_size = -16384", nullptr, nullptr, nullptr),
          "cache_size");
    Check(db, sqlite3_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)",
                           nullptr, nullptr, nullptr),
          "create");
    sqlite3_stmt* insert = nullptr;
    Check(db, sqlite3_prepare_v2(db, "INSERT INTO t (id, doc) VALUES (?, ?)", -1, &insert,
                                 nullptr),
          "prepare");
    state.ResumeTiming();

    int64_t id = 0;
    for (std::size_t at = 0; at < lines.size(); at += kBatch) {
      std::size_t end = std::min(at + kBatch, lines.size());
      Check(db, sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), "begin");
      for (std::size_t i = at; i < end; ++i) {
        sqlite3_bind_int64(insert, 1, id++);
        sqlite3_bind_text(insert, 2, lines[i].data(), int(lines[i].size()), SQLITE_STATIC);
        Check(db, sqlite3_step(insert), "insert");
        sqlite3_reset(insert);
      }
      Check(db, sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), "commit");
    }

    if (!timed_close) state.PauseTiming();
    sqlite3_finalize(insert);
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
    sqlite3_close_v2(db);
    if (!timed_close) state.ResumeTiming();
  }
  SetStoreCounters(state, lines);
}

// A database holding the three collections, built once for the read
// benchmarks.
Database& Loaded() {
  static std::unique_ptr<Database> db = [] {
    std::filesystem::path file = ScratchDir() / "loaded.sqlite";
    RemoveDatabase(file);
    auto db = std::make_unique<Database>(file);
    for (const char* name : {"anomalies", "normalexecs", "metadata"}) {
      db->create_collection(name);
      const auto& lines = Lines(name);
      db->store_multi(name, std::vector<std::string_view>(lines.begin(), lines.end()));
    }
    db->checkpoint();
    return db;
  }();
  return *db;
}

void BM_FetchById(benchmark::State& state) {
  Database& db = Loaded();
  std::mt19937 random(42);
  std::uniform_int_distribution<int64_t> id(0, 2289);
  std::size_t bytes = 0;
  for (auto _ : state) {
    Record r = db.fetch("anomalies", id(random));
    bytes += r.json.size();
    benchmark::DoNotOptimize(r);
  }
  state.counters["MB/s"] = benchmark::Counter(double(bytes) / 1e6, benchmark::Counter::kIsRate);
}

void BM_Filter(benchmark::State& state, const std::string& collection,
               const std::string& expression) {
  Database& db = Loaded();
  std::size_t matched = 0;
  for (auto _ : state) {
    auto records = db.filter(collection, expression);
    matched = records.size();
    benchmark::DoNotOptimize(records);
  }
  state.counters["matched"] = double(matched);
}

void BM_Count(benchmark::State& state, const std::string& collection,
              const std::string& expression) {
  Database& db = Loaded();
  int64_t matched = 0;
  for (auto _ : state) matched = db.count(collection, expression);
  state.counters["matched"] = double(matched);
}

// Validation and extraction of indexed values alone, for the breakdown.
void BM_PrepareBatch(benchmark::State& state, const std::string& collection) {
  const auto& lines = Lines(collection);
  std::vector<std::string_view> docs(lines.begin(), lines.end());
  std::vector<std::string> fields = DefaultIndexedFields(collection);
  for (auto _ : state) {
    benchmark::DoNotOptimize(PrepareBatch(docs, fields, kDefaultMaxDocumentBytes));
  }
  SetStoreCounters(state, lines);
}

#define PROVDB_STORE_BENCHMARKS(collection)                                                  \
  BENCHMARK_CAPTURE(BM_Store, collection, std::string(#collection), false)                  \
      ->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();                           \
  BENCHMARK_CAPTURE(BM_BareSqliteInsert, collection, std::string(#collection), false)       \
      ->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();                           \
  BENCHMARK_CAPTURE(BM_Store, collection##_with_close, std::string(#collection), true)      \
      ->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();                           \
  BENCHMARK_CAPTURE(BM_BareSqliteInsert, collection##_with_close, std::string(#collection), \
                    true)                                                                   \
      ->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();                           \
  BENCHMARK_CAPTURE(BM_PrepareBatch, collection, std::string(#collection))                  \
      ->Unit(benchmark::kMillisecond)->UseRealTime()

PROVDB_STORE_BENCHMARKS(anomalies);
PROVDB_STORE_BENCHMARKS(normalexecs);

BENCHMARK(BM_FetchById)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Filter, indexed_fid_500, std::string("anomalies"),
                  std::string("fid = 500"))
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Count, indexed_fid_500, std::string("anomalies"),
                  std::string("fid = 500"))
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Filter, scan_runtime_exclusive, std::string("anomalies"),
                  std::string("runtime_exclusive > 100000"))
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Filter, scan_gpu_device, std::string("anomalies"),
                  std::string("gpu_location.device = 0"))
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Filter, scan_metadata_value, std::string("metadata"),
                  std::string("value LIKE '%V100%'"))
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace provdb::storage

BENCHMARK_MAIN();
