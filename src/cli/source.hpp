// Where the query tools read a database directory from: its live server
// (when address files are present) through the client library, or directly
// its SQLite files, opened read-only, after the run. Both give the same
// answers; the tools do not need to know which one they talk to.
// Threads: a Source is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/database.hpp"

namespace provdb::cli {

using storage::QueryResult;
using storage::Record;

// One database of a directory: shard k, or the global database.
struct Target {
  bool global = false;
  int shard = 0;

  static Target Shard(int k) { return Target{false, k}; }
  static Target Global() { return Target{true, 0}; }
  // "shard 3" or "the global database", for messages.
  std::string describe() const;
};

// What a database directory holds.
struct DirState {
  bool exists = false;
  // The path exists but is a file or something else, not a directory.
  bool not_directory = false;
  // Instances whose provider.address.<I> file is present.
  std::vector<int> live_instances;
  // Shards with a file, counted from 0 up to the first missing one.
  int shard_files = 0;
  bool global_file = false;

  bool live() const { return !live_instances.empty(); }
};

DirState InspectDir(const std::filesystem::path& dir);

// Throws Error(kInvalidArgument) when `dir` exists but is not a directory,
// telling to give the directory of a run; `option` is the option that named it.
void RefuseNonDirectory(const std::filesystem::path& dir, const DirState& state,
                        const std::string& option = "--dir");

struct SourceOptions {
  // Fail unless a server is running.
  bool require_online = false;
  // How long to wait for a live server to answer.
  std::chrono::milliseconds timeout{10'000};
  // How long one filter or SELECT may run. A live server applies its own
  // limit when that is lower.
  std::chrono::milliseconds query_time_limit{60'000};
};

class Source {
 public:
  virtual ~Source() = default;

  virtual bool online() const = 0;
  virtual int num_shards() const = 0;
  virtual std::vector<Target> shards() const;

  virtual std::vector<std::string> list_collections(Target t) = 0;
  virtual QueryResult query(Target t, std::string_view sql) = 0;
  virtual std::vector<Record> filter(Target t, std::string_view collection,
                                     std::string_view expression) = 0;
  virtual int64_t count(Target t, std::string_view collection,
                        std::string_view expression) = 0;
  virtual int64_t size(Target t, std::string_view collection) = 0;
  virtual std::vector<Record> all(Target t, std::string_view collection) = 0;
  virtual std::optional<Record> fetch(Target t, std::string_view collection, int64_t id) = 0;
};

// Opens the directory: online when its address files are present, offline
// otherwise. Throws Error(kNotFound) when the directory does not exist or
// holds no provdb database, Error(kInvalidArgument) when it is not a
// directory, and Error(kUnavailable) when require_online is
// set and no server is running, or when the server named by the address
// files does not answer.
std::unique_ptr<Source> OpenSource(const std::filesystem::path& dir,
                                   const SourceOptions& options = {});

// The databases a tool reads, from its --global and --shard options: the
// global database, every shard (no shard given) or one shard. Throws
// Error(kInvalidArgument), naming `dir`, when that shard does not exist.
std::vector<Target> SelectTargets(const Source& source, const std::string& dir, bool global,
                                  std::optional<int> shard);

// Throws Error(kInvalidArgument) when a --shard option holds a negative
// number: shards are numbered from 0, and leaving the option out is how to
// ask for all of them.
void CheckShardOption(std::optional<int> shard);

}  // namespace provdb::cli
