// provdb import: loads JSON-lines or JSON-array files (optionally .xz) into a
// collection of a database directory, writing the SQLite files directly. A
// server must not be running on the directory: two writers on one file would
// contend for its lock. Records are validated a batch at a time; a bad one
// stops the import before anything of its batch is stored.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string_view>

#include <simdjson.h>

#include "cli/data_commands.hpp"
#include "cli/line_reader.hpp"
#include "cli/progress.hpp"
#include "cli/source.hpp"
#include "common/error.hpp"
#include "storage/database.hpp"

namespace provdb::cli {
namespace {
namespace fs = std::filesystem;

struct ImportArgs {
  std::string dir;
  std::optional<int> shards;
  std::optional<int> shard;
  bool global = false;
  std::string collection;
  std::vector<std::string> files;
  std::size_t batch = 1000;
};

// The databases records go to, opened for writing.
struct Destination {
  std::vector<std::unique_ptr<storage::Database>> dbs;
  // When set, every record goes to dbs[0]; else by rid over all of dbs.
  bool single = false;
  std::vector<std::string> fields;
};

// "was" or "were", to go with CountOf(n, ...).
const char* WasWere(uint64_t n) { return n == 1 ? "was" : "were"; }

void CheckArgs(const ImportArgs& a) {
  storage::CheckCollectionName(a.collection);
  CheckShardOption(a.shard);
  if (a.shards && *a.shards < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "--shards " + std::to_string(*a.shards) +
                    " is not a number of shards: give 1 or more, or leave it out for 1");
  }
  if (a.batch == 0) throw Error(ErrorCode::kInvalidArgument, "--batch must be at least 1");
}

int ShardCount(const ImportArgs& a, const DirState& state) {
  if (state.shard_files > 0 && a.shards && *a.shards != state.shard_files) {
    throw Error(ErrorCode::kInvalidArgument,
                "'" + a.dir + "' already has " + CountOf(state.shard_files, "shard") +
                    "; --shards " + std::to_string(*a.shards) +
                    " would change where records go; drop --shards or use a new directory");
  }
  if (state.shard_files > 0) return state.shard_files;
  return a.shards.value_or(1);
}

// Shards are numbered without gaps; a lone provdb.3.sqlite would not be
// found by the query tools. So --shard may only name a shard that exists,
// or shard 0 of a new directory.
void CheckShardExists(const ImportArgs& a, const DirState& state) {
  const int shard = *a.shard;
  if (shard < std::max(state.shard_files, 1)) return;
  if (state.shard_files > 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "'" + a.dir + "' has " + CountOf(state.shard_files, "shard") + " (0 to " +
                    std::to_string(state.shard_files - 1) + "), so there is no shard " +
                    std::to_string(shard) + "; the number of shards is fixed when a "
                    "directory is made: choose a shard below " +
                    std::to_string(state.shard_files) + ", or import into a new directory");
  }
  throw Error(ErrorCode::kInvalidArgument,
              "'" + a.dir + "' has no shards yet, so there is no shard " +
                  std::to_string(shard) + "; make " + std::to_string(shard + 1) +
                  " empty shards first (provdb import --dir " + a.dir + " --shards " +
                  std::to_string(shard + 1) + " " + a.collection +
                  " - < /dev/null), then import with --shard " + std::to_string(shard) +
                  "; or leave out --shard to spread the records by rid");
}

Destination OpenDestination(const ImportArgs& a) {
  const DirState state = InspectDir(a.dir);
  RefuseNonDirectory(a.dir, state);
  if (state.live()) {
    throw Error(ErrorCode::kUnavailable,
                "a server is running on '" + a.dir +
                    "' (provider.address.* files are there); import writes the files "
                    "directly, so stop it first with provdb stop --dir " + a.dir);
  }
  fs::create_directories(a.dir);

  std::vector<fs::path> files;
  if (a.global) {
    files.push_back(fs::path(a.dir) / storage::GlobalFileName());
  } else if (a.shard) {
    CheckShardExists(a, state);
    files.push_back(fs::path(a.dir) / storage::ShardFileName(*a.shard));
  } else {
    for (int k = 0; k < ShardCount(a, state); ++k) {
      files.push_back(fs::path(a.dir) / storage::ShardFileName(k));
    }
  }

  Destination d;
  d.single = files.size() == 1;
  for (const auto& f : files) {
    d.dbs.push_back(std::make_unique<storage::Database>(f));
    d.dbs.back()->create_collection(a.collection, /*if_missing=*/true);
  }
  d.fields = d.dbs.front()->indexed_fields(a.collection);
  return d;
}

// The shard of a record: its rid modulo the shard count (as ranks write),
// or round robin by position for records without an integer rid.
std::size_t ShardOf(std::string_view json, std::size_t position, std::size_t shards) {
  thread_local simdjson::ondemand::parser parser;
  simdjson::padded_string padded(json);
  int64_t rid = 0;
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc) == simdjson::SUCCESS &&
      doc.find_field("rid").get_int64().get(rid) == simdjson::SUCCESS && rid >= 0) {
    return static_cast<std::size_t>(rid) % shards;
  }
  return position % shards;
}

class Importer {
 public:
  Importer(const ImportArgs& a, Destination& d, Progress& progress)
      : args_(a), dest_(d), progress_(progress), pending_(d.dbs.size()) {}

  void add(std::string_view json, const std::string& which) {
    if (first_which_.empty()) first_which_ = which;
    storage::PreparedDocument doc;
    try {
      doc = storage::PrepareDocument(json, dest_.fields, storage::kDefaultMaxDocumentBytes, which);
    } catch (const Error& e) {
      throw Error(e.code(), std::string(e.what()) + ". Nothing of the batch starting at " +
                                first_which_ + " was stored; " + CountOf(stored_, "record") +
                                " before it " + WasWere(stored_) +
                                ". Fix the record and import the rest, or the whole file "
                                "into a fresh directory");
    }
    const std::size_t k = dest_.single ? 0 : ShardOf(doc.json, position_, dest_.dbs.size());
    ++position_;
    pending_[k].push_back(std::move(doc));
    if (++in_batch_ >= args_.batch) flush();
  }

  void flush() {
    for (std::size_t k = 0; k < pending_.size(); ++k) {
      if (pending_[k].empty()) continue;
      std::vector<storage::PreparedBatch> batches;
      batches.push_back({args_.collection, std::move(pending_[k])});
      dest_.dbs[k]->store_batches(std::move(batches));
      pending_[k].clear();
    }
    stored_ += in_batch_;
    progress_.add(in_batch_);
    in_batch_ = 0;
    first_which_.clear();
  }

  uint64_t stored() const { return stored_; }

 private:
  const ImportArgs& args_;
  Destination& dest_;
  Progress& progress_;
  std::vector<std::vector<storage::PreparedDocument>> pending_;
  std::size_t in_batch_ = 0;
  std::size_t position_ = 0;
  uint64_t stored_ = 0;
  std::string first_which_;
};

// A JSON array file: each element one record.
// Limitation: the file is held in memory whole while it is imported; JSON
// lines are streamed, so prefer them for files larger than memory.
void ImportArray(LineReader& reader, std::string first_line, Importer& importer) {
  std::string text = std::move(first_line);
  std::string line;
  while (reader.next(line)) text += "\n" + line;

  simdjson::ondemand::parser parser;
  simdjson::padded_string padded(text);
  simdjson::ondemand::document doc;
  simdjson::ondemand::array array;
  auto error = parser.iterate(padded).get(doc);
  if (!error) error = doc.get_array().get(array);
  // Elements are counted from 1, as lines are.
  std::size_t number = 0;
  if (!error) {
    for (auto element : array) {
      ++number;
      std::string_view raw;
      if ((error = simdjson::to_json_string(element).get(raw))) break;
      importer.add(raw, reader.path().string() + " element " + std::to_string(number));
    }
  }
  if (error) {
    throw Error(ErrorCode::kBadDocument,
                reader.path().string() + ": not a valid JSON array near element " +
                    std::to_string(std::max<std::size_t>(number, 1)) + " (counting from 1; " +
                    simdjson::error_message(error) + "); " +
                    CountOf(importer.stored(), "record") + " before that batch " +
                    WasWere(importer.stored()) + " stored");
  }
}

void ImportLines(LineReader& reader, Importer& importer) {
  std::string line;
  bool first = true;
  while (reader.next(line)) {
    // Editors on some systems start UTF-8 files with a byte order mark.
    constexpr std::string_view kBom = "\xEF\xBB\xBF";
    if (reader.line_number() == 1 && line.starts_with(kBom)) line.erase(0, kBom.size());
    const std::size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    if (first && line[start] == '[') {
      ImportArray(reader, line, importer);
      return;
    }
    first = false;
    importer.add(line, reader.path().string() + " line " + std::to_string(reader.line_number()));
  }
}

void ImportFile(const std::string& path, Importer& importer) {
  LineReader reader(path);
  try {
    ImportLines(reader, importer);
  } catch (const Error&) {
    // A damaged .xz file gives a garbled last line before xz reports the
    // damage; then the damage is the error to report, not the line.
    reader.drain();
    if (reader.damage().empty()) throw;
    throw Error(ErrorCode::kBadDocument,
                reader.damage() + ". " + CountOf(importer.stored(), "record") +
                    " before the batch being read " + WasWere(importer.stored()) +
                    " stored; import the complete file into a fresh directory");
  }
}

int RunImport(const ImportArgs& a) {
  CheckArgs(a);
  for (const auto& f : a.files) {
    std::error_code ec;
    if (f != "-" && !fs::is_regular_file(f, ec)) {
      throw Error(ErrorCode::kNotFound, "cannot read '" + f + "': no such file; check the path");
    }
  }
  Destination dest = OpenDestination(a);

  Progress progress("import", 0, "record");
  Importer importer(a, dest, progress);
  for (const auto& f : a.files) ImportFile(f, importer);
  importer.flush();
  progress.finish();

  const std::string where = a.global ? "the global database"
                            : a.shard ? "shard " + std::to_string(*a.shard)
                                      : CountOf(dest.dbs.size(), "shard");
  std::cout << "imported " << CountOf(importer.stored(), "record") << " into " << a.collection
            << " (" << where << ") of " << a.dir << "\n";
  return 0;
}

}  // namespace

void AddImportCommand(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ImportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "import", "Load JSON-lines or JSON-array files (.xz too) into a collection");
  cmd->add_option("--dir", a->dir, "Database directory (created if missing)")->required();
  auto* shards = cmd->add_option("--shards", a->shards,
                                 "Shards of a new directory (default 1; records go by rid)");
  auto* shard = cmd->add_option("--shard", a->shard, "Put every record into this shard");
  auto* global = cmd->add_flag("--global", a->global, "Into the global database");
  shards->excludes(shard)->excludes(global);
  shard->excludes(global);
  cmd->add_option("--batch", a->batch, "Records validated and stored together")
      ->capture_default_str();
  cmd->add_option("collection", a->collection, "Collection to load into")->required();
  cmd->add_option("files", a->files, "Files to load; - reads standard input")->required();
  cmd->callback([a, &exit_code] { exit_code = RunImport(*a); });
}

}  // namespace provdb::cli
