// provdb query: reads a database directory, through its live server while a
// run goes on or directly on its files afterwards, and prints documents,
// counts or SELECT results from every shard (tagged with the shard), one
// shard, or the global database. Also adds import and export.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <set>

#include "cli/commands.hpp"
#include "cli/data_commands.hpp"
#include "cli/merge.hpp"
#include "cli/output.hpp"
#include "cli/source.hpp"
#include "common/error.hpp"

namespace provdb::cli {
namespace {

struct QueryArgs {
  std::string dir;
  std::optional<int> shard;
  bool global = false;
  std::string collection;
  std::string where;
  std::string sql;
  std::string merge;
  std::optional<int64_t> id;
  bool count = false;
  std::string format;
  std::string fields;
  bool online = false;
  double timeout = 10;
  double time_limit = 60;
};

// Runs `f` and puts the database it ran on in front of any error message.
template <typename F>
auto On(const Target& t, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error(e.code(), "on " + t.describe() + ": " + e.what());
  }
}

std::chrono::milliseconds Milliseconds(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// Durations are given in seconds; a billion (over 30 years) is plenty and
// keeps the milliseconds within range.
void CheckSeconds(const std::string& option, double seconds) {
  if (seconds > 0 && seconds <= 1e9) return;
  throw Error(ErrorCode::kInvalidArgument,
              option + " is a number of seconds, more than 0 and at most 1e9; for example " +
                  option + " 30");
}

std::optional<int> ShardTag(const Target& t) {
  return t.global ? std::nullopt : std::optional<int>(t.shard);
}

void CheckArgs(const QueryArgs& a) {
  CheckShardOption(a.shard);
  if (a.id && *a.id < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "--id " + std::to_string(*a.id) +
                    " is not a record id: ids are numbered from 0; leave --id out to read "
                    "every record");
  }
  CheckSeconds("--timeout", a.timeout);
  CheckSeconds("--time-limit", a.time_limit);
  const int modes = !a.where.empty() + !a.sql.empty() + a.id.has_value();
  if (modes > 1) {
    throw Error(ErrorCode::kInvalidArgument, "give at most one of --where, --sql and --id");
  }
  if (a.sql.empty() && a.collection.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "name a collection (anomalies, normalexecs, metadata; with --global "
                "func_stats, counter_stats, ad_model), or give --sql");
  }
  if (!a.merge.empty() && a.sql.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "--merge runs over the results of --sql; give both");
  }
  if (a.count && (!a.sql.empty() || a.id)) {
    throw Error(ErrorCode::kInvalidArgument, "--count counts a collection (with or without "
                                             "--where); it does not combine with --sql or --id");
  }
}

// The targets that hold the collection; an error when none does.
std::vector<Target> HoldingCollection(Source& source, const std::vector<Target>& targets,
                                      const QueryArgs& a) {
  std::vector<Target> holding;
  std::set<std::string> known;
  for (const auto& t : targets) {
    const auto names = On(t, [&] { return source.list_collections(t); });
    known.insert(names.begin(), names.end());
    if (std::find(names.begin(), names.end(), a.collection) != names.end()) holding.push_back(t);
  }
  if (!holding.empty()) return holding;

  std::string list;
  for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
  const std::string where = a.global ? "the global database" : "the shards";
  throw Error(ErrorCode::kNotFound,
              "unknown collection '" + a.collection + "' in " + where + " of '" + a.dir +
                  "'; " + (list.empty() ? "there are none" : "there are: " + list) +
                  (a.global ? "" : " (func_stats, counter_stats, ad_model need --global)"));
}

Table ProjectColumns(const Table& table, const std::vector<std::string>& fields) {
  if (fields.empty()) return table;
  std::vector<std::size_t> index;
  for (const auto& f : fields) {
    auto it = std::find(table.columns.begin(), table.columns.end(), FieldLabel(f));
    if (it == table.columns.end()) {
      std::string list;
      for (const auto& c : table.columns) list += (list.empty() ? "" : ", ") + c;
      throw Error(ErrorCode::kInvalidArgument,
                  "--fields names '" + f + "', which the result lacks; its columns are " + list);
    }
    index.push_back(static_cast<std::size_t>(it - table.columns.begin()));
  }
  Table out;
  for (auto i : index) out.columns.push_back(table.columns[i]);
  for (const auto& row : table.rows) {
    auto& r = out.rows.emplace_back();
    for (auto i : index) r.push_back(row[i]);
  }
  return out;
}

Table RunSql(Source& source, const std::vector<Target>& targets, const QueryArgs& a) {
  Table all;
  for (const auto& t : targets) {
    Table part = FromQueryResult(On(t, [&] { return source.query(t, a.sql); }), ShardTag(t));
    if (all.columns.empty()) all.columns = part.columns;
    for (auto& row : part.rows) all.rows.push_back(std::move(row));
  }
  if (!a.merge.empty()) return MergeResults(all, a.merge, Milliseconds(a.time_limit));
  return all;
}

Table Counts(Source& source, const std::vector<Target>& targets, const QueryArgs& a) {
  Table table;
  table.columns = {"shard", "count"};
  int64_t total = 0;
  for (const auto& t : targets) {
    const int64_t n = On(t, [&] {
      return a.where.empty() ? source.size(t, a.collection)
                             : source.count(t, a.collection, a.where);
    });
    total += n;
    table.rows.push_back({t.global ? nlohmann::ordered_json("global")
                                   : nlohmann::ordered_json(t.shard),
                          n});
  }
  if (targets.size() > 1) table.rows.push_back({"all", total});
  return table;
}

std::vector<Document> ReadDocuments(Source& source, const std::vector<Target>& targets,
                                    const QueryArgs& a) {
  std::vector<Document> docs;
  for (const auto& t : targets) {
    std::vector<Record> records;
    if (a.id) {
      auto found = On(t, [&] { return source.fetch(t, a.collection, *a.id); });
      if (found) records.push_back(std::move(*found));
    } else if (!a.where.empty()) {
      records = On(t, [&] { return source.filter(t, a.collection, a.where); });
    } else {
      records = On(t, [&] { return source.all(t, a.collection); });
    }
    for (auto& r : records) docs.push_back(Document{ShardTag(t), std::move(r)});
  }
  if (a.id && docs.empty()) {
    throw Error(ErrorCode::kNotFound, "no record with id " + std::to_string(*a.id) + " in " +
                                          a.collection + " of '" + a.dir + "'");
  }
  return docs;
}

// What a terminal table shows of well-known collections when no --fields
// are given: whole function records do not fit on a screen.
std::vector<std::string> TableDefaults(const std::string& collection) {
  if (collection == "anomalies" || collection == "normalexecs") {
    return {"__shard", "__id",          "rid",  "io_step", "fid", "func", "runtime_total",
            "runtime_exclusive", "event_id"};
  }
  if (collection == "metadata") return {"__shard", "__id", "rid", "tid", "descr", "value"};
  if (collection == "func_stats") {
    return {"__id", "app", "fid", "name", "anomaly_metrics.anomaly_count",
            "runtime_profile.exclusive_runtime.count",
            "runtime_profile.exclusive_runtime.mean"};
  }
  return {};
}

int RunQuery(const QueryArgs& a) {
  CheckArgs(a);
  const Format format =
      ParseFormat(!a.format.empty() ? a.format : StdoutIsTerminal() ? "table" : "jsonl");
  const std::vector<std::string> fields = SplitFields(a.fields);

  SourceOptions options;
  options.require_online = a.online;
  options.timeout = Milliseconds(a.timeout);
  options.query_time_limit = Milliseconds(a.time_limit);
  auto source = OpenSource(a.dir, options);
  const auto targets = SelectTargets(*source, a.dir, a.global, a.shard);

  if (!a.sql.empty()) {
    WriteTable(std::cout, ProjectColumns(RunSql(*source, targets, a), fields), format);
    return 0;
  }
  // Malformed paths are reported even when no document matches.
  for (const auto& f : fields) ValueAtPath(nlohmann::ordered_json::object(), f);
  const auto holding = HoldingCollection(*source, targets, a);
  if (a.count) {
    WriteTable(std::cout, Counts(*source, holding, a), format);
    return 0;
  }
  const auto docs = ReadDocuments(*source, holding, a);
  const auto defaults = format == Format::kTable ? TableDefaults(a.collection)
                                                 : std::vector<std::string>{};
  WriteDocuments(std::cout, docs, format, fields, defaults);
  return 0;
}

void AddQueryCommand(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<QueryArgs>();
  CLI::App* cmd = app.add_subcommand(
      "query", "Query a database directory: its live server during a run, its files after");
  cmd->add_option("--dir", a->dir, "Database directory of the run")->required();
  auto* shard = cmd->add_option("--shard", a->shard, "Only this shard (default: all, merged)");
  auto* global = cmd->add_flag("--global", a->global, "The global database (func_stats, ...)");
  shard->excludes(global);
  cmd->add_option("collection", a->collection,
                  "Collection: anomalies, normalexecs, metadata; func_stats, counter_stats, "
                  "ad_model with --global (may be omitted with --sql)");
  cmd->add_option("--where", a->where,
                  "Filter: an SQL boolean expression over fields, e.g. "
                  "\"fid = 500 and runtime_exclusive > 1e5\"");
  cmd->add_option("--sql", a->sql,
                  "A read-only SELECT run on each shard; rows get a shard column. Tables "
                  "have __id, doc and the indexed fields; read others with "
                  "json_extract(doc, '$.func')");
  cmd->add_option("--merge", a->merge,
                  "A SELECT over table 'result' holding every shard's --sql rows, "
                  "e.g. \"select func, sum(n) from result group by func\"");
  cmd->add_option("--id", a->id, "Fetch the record with this id (from each shard)");
  cmd->add_flag("--count", a->count, "Count records per shard and in all");
  cmd->add_option("--format", a->format,
                  "json, jsonl, csv or table (default: table on a terminal, else jsonl)");
  cmd->add_option("--fields", a->fields,
                  "Comma-separated fields or columns, nested by path: "
                  "func,gpu_location.device,call_stack[0].func");
  cmd->add_flag("--online", a->online, "Fail unless a server is running for the directory");
  cmd->add_option("--timeout", a->timeout, "Seconds to wait for a live server")
      ->capture_default_str();
  cmd->add_option("--time-limit", a->time_limit,
                  "Seconds one filter, --sql or --merge statement may run (a live server "
                  "applies its own limit when lower)")
      ->capture_default_str();
  cmd->callback([a, &exit_code] { exit_code = RunQuery(*a); });
}

}  // namespace

bool StdoutIsTerminal() { return ::isatty(STDOUT_FILENO) == 1; }

void AddQueryCommands(CLI::App& app, int& exit_code) {
  AddQueryCommand(app, exit_code);
  AddImportCommand(app, exit_code);
  AddExportCommand(app, exit_code);
}

}  // namespace provdb::cli
