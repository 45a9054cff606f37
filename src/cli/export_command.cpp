// provdb export: writes a collection as JSON lines (every shard, one shard,
// or the global database), or every collection of a directory into one
// SQLite file where each table has a shard column, for pandas or any SQL
// tool. Reads through the same Source as query, so it works live or offline.
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "cli/data_commands.hpp"
#include "cli/merge.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "cli/source.hpp"
#include "common/error.hpp"

namespace provdb::cli {
namespace {
namespace fs = std::filesystem;

struct ExportArgs {
  std::string dir;
  std::optional<int> shard;
  bool global = false;
  std::string collection;
  std::string out;
  std::string sqlite;
  bool force = false;
};

// Records are written as stored: "__id" first, no shard, so that importing
// them back gives the same documents.
// Limitation: each shard's collection is read into memory whole before it
// is written.
int ExportJsonLines(const ExportArgs& a, Source& source) {
  std::ofstream file;
  if (!a.out.empty() && a.out != "-") {
    if (fs::exists(a.out) && !a.force) {
      throw Error(ErrorCode::kAlreadyExists,
                  "'" + a.out + "' exists; choose another --out or add --force to overwrite it");
    }
    file.open(a.out, std::ios::trunc);
    if (!file) throw Error(ErrorCode::kStorage, "cannot write '" + a.out + "'");
  }
  std::ostream& out = file.is_open() ? file : std::cout;

  uint64_t written = 0;
  bool found = false;
  for (const auto& t : SelectTargets(source, a.dir, a.global, a.shard)) {
    const auto names = source.list_collections(t);
    if (std::find(names.begin(), names.end(), a.collection) == names.end()) continue;
    found = true;
    for (const auto& r : source.all(t, a.collection)) out << r.json << '\n';
    written += static_cast<uint64_t>(source.size(t, a.collection));
  }
  if (!found) {
    throw Error(ErrorCode::kNotFound, "unknown collection '" + a.collection + "' in '" + a.dir +
                                          "'" + (a.global ? "" : " (global ones need --global)"));
  }
  out.flush();
  if (!out) throw Error(ErrorCode::kStorage, "writing '" + a.out + "' failed (disk full?)");
  if (file.is_open()) {
    std::cerr << "exported " << CountOf(written, "record") << " of " << a.collection
              << " to " << a.out << "\n";
  }
  return 0;
}

class SqliteFile {
 public:
  explicit SqliteFile(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      const std::string why = sqlite3_errmsg(db_);
      sqlite3_close(db_);
      throw Error(ErrorCode::kStorage, "cannot create '" + path + "': " + why);
    }
    exec("PRAGMA journal_mode=OFF");
    exec("BEGIN");
  }
  ~SqliteFile() { sqlite3_close(db_); }

  void exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      const std::string why = message != nullptr ? message : "unknown error";
      sqlite3_free(message);
      throw Error(ErrorCode::kStorage, "export failed at '" + sql.substr(0, 80) + "': " + why);
    }
  }

  // Appends rows; the table is created, or widened, to hold their columns.
  void append(const std::string& table, const Table& rows) {
    auto& columns = tables_[table];
    if (columns.empty()) {
      std::string create = "CREATE TABLE " + QuoteIdentifier(table) + " (";
      for (std::size_t c = 0; c < rows.columns.size(); ++c) {
        create += (c > 0 ? ", " : "") + QuoteIdentifier(rows.columns[c]);
      }
      exec(create + ")");
      columns.insert(rows.columns.begin(), rows.columns.end());
    }
    for (const auto& c : rows.columns) {
      if (columns.insert(c).second) {
        exec("ALTER TABLE " + QuoteIdentifier(table) + " ADD COLUMN " + QuoteIdentifier(c));
      }
    }
    insert(table, rows);
  }

  void commit() { exec("COMMIT"); }

 private:
  void insert(const std::string& table, const Table& rows) {
    std::string sql = "INSERT INTO " + QuoteIdentifier(table) + " (";
    std::string values;
    for (std::size_t c = 0; c < rows.columns.size(); ++c) {
      sql += (c > 0 ? ", " : "") + QuoteIdentifier(rows.columns[c]);
      values += c > 0 ? ", ?" : "?";
    }
    sql += ") VALUES (" + values + ")";
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw Error(ErrorCode::kInternal, std::string("export insert: ") + sqlite3_errmsg(db_));
    }
    for (const auto& row : rows.rows) {
      for (std::size_t c = 0; c < row.size(); ++c) bind(stmt, static_cast<int>(c + 1), row[c]);
      if (sqlite3_step(stmt) != SQLITE_DONE) {
        const std::string why = sqlite3_errmsg(db_);
        sqlite3_finalize(stmt);
        throw Error(ErrorCode::kStorage, "writing table " + table + " failed: " + why);
      }
      sqlite3_reset(stmt);
    }
    sqlite3_finalize(stmt);
  }

  static void bind(sqlite3_stmt* stmt, int i, const nlohmann::ordered_json& v) {
    if (v.is_null()) {
      sqlite3_bind_null(stmt, i);
    } else if (v.is_number_integer()) {
      sqlite3_bind_int64(stmt, i, v.get<int64_t>());
    } else if (v.is_number()) {
      sqlite3_bind_double(stmt, i, v.get<double>());
    } else {
      const std::string s = v.is_string() ? v.get<std::string>() : v.dump();
      sqlite3_bind_text(stmt, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    }
  }

  sqlite3* db_ = nullptr;
  std::map<std::string, std::set<std::string>> tables_;
};

// Every collection of every shard into table <collection> with a shard
// column; the global collections into tables of their own name (prefixed
// "global_" if a shard collection has the same name) without one.
int ExportSqlite(const ExportArgs& a, Source& source) {
  if (fs::exists(a.sqlite)) {
    if (!a.force) {
      throw Error(ErrorCode::kAlreadyExists, "'" + a.sqlite +
                                                 "' exists; choose another --sqlite file or "
                                                 "add --force to replace it");
    }
    fs::remove(a.sqlite);
  }
  SqliteFile out(a.sqlite);
  std::set<std::string> shard_tables;
  uint64_t rows = 0;
  Progress progress("export", 0, "record");

  auto copy = [&](Target t, const std::string& collection, const std::string& table) {
    const Table part = FromQueryResult(
        source.query(t, "SELECT * FROM " + QuoteIdentifier(collection)),
        t.global ? std::nullopt : std::optional<int>(t.shard));
    out.append(table, part);
    rows += part.rows.size();
    progress.add(part.rows.size());
  };
  for (const auto& t : source.shards()) {
    for (const auto& c : source.list_collections(t)) {
      copy(t, c, c);
      shard_tables.insert(c);
    }
  }
  const DirState state = InspectDir(a.dir);
  if (source.online() || state.global_file) {
    for (const auto& c : source.list_collections(Target::Global())) {
      copy(Target::Global(), c, shard_tables.count(c) ? "global_" + c : c);
    }
  }
  out.commit();
  progress.finish();
  std::cerr << "exported " << CountOf(rows, "record") << " of "
            << CountOf(static_cast<uint64_t>(source.num_shards()), "shard")
            << " and the global database to " << a.sqlite << "\n";
  return 0;
}

int RunExport(const ExportArgs& a) {
  if (a.sqlite.empty() == a.collection.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "name one COLLECTION to export as JSON lines, or give --sqlite FILE to "
                "export everything into one SQLite file (not both)");
  }
  CheckShardOption(a.shard);
  // Export reads whole collections, which on large runs takes long; it runs
  // no statement of the user's, so it has no reason to stop early.
  SourceOptions options;
  options.query_time_limit = std::chrono::hours(24);
  auto source = OpenSource(a.dir, options);
  return a.sqlite.empty() ? ExportJsonLines(a, *source) : ExportSqlite(a, *source);
}

}  // namespace

void AddExportCommand(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "export", "Write a collection as JSON lines, or everything into one SQLite file");
  cmd->add_option("--dir", a->dir, "Database directory of the run")->required();
  auto* shard = cmd->add_option("--shard", a->shard, "Only this shard (default: all)");
  auto* global = cmd->add_flag("--global", a->global, "The global database");
  shard->excludes(global);
  cmd->add_option("collection", a->collection, "Collection to write as JSON lines");
  cmd->add_option("--out,-o", a->out, "File for the JSON lines (default: standard output)");
  cmd->add_option("--sqlite", a->sqlite,
                  "Write every collection into this SQLite file, tables with a shard column");
  cmd->add_flag("--force", a->force, "Overwrite an existing output file");
  cmd->callback([a, &exit_code] { exit_code = RunExport(*a); });
}

}  // namespace provdb::cli
