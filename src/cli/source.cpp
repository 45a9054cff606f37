// The two kinds of Source. The offline one opens each file on first use,
// read-only and without creating anything; the online one is a tool client,
// which the server does not count when it decides to shut itself down.
#include "cli/source.hpp"

#include <algorithm>
#include <map>

#include "client/client.hpp"
#include "common/error.hpp"

namespace provdb::cli {
namespace fs = std::filesystem;
namespace {

constexpr const char* kAddressPrefix = "provider.address.";

class OfflineSource : public Source {
 public:
  OfflineSource(fs::path dir, const DirState& state, std::chrono::milliseconds time_limit)
      : dir_(std::move(dir)),
        shards_(state.shard_files),
        has_global_(state.global_file),
        time_limit_(time_limit) {}

  bool online() const override { return false; }
  int num_shards() const override { return shards_; }

  std::vector<std::string> list_collections(Target t) override {
    if (t.global && !has_global_) return {};
    return db(t).list_collections();
  }
  QueryResult query(Target t, std::string_view sql) override { return db(t).query(sql); }
  std::vector<Record> filter(Target t, std::string_view c, std::string_view e) override {
    return db(t).filter(c, e);
  }
  int64_t count(Target t, std::string_view c, std::string_view e) override {
    return db(t).count(c, e);
  }
  int64_t size(Target t, std::string_view c) override { return db(t).size(c); }
  std::vector<Record> all(Target t, std::string_view c) override { return db(t).all(c); }
  std::optional<Record> fetch(Target t, std::string_view c, int64_t id) override {
    auto found = db(t).fetch_multi(c, {id});
    return found.empty() ? std::nullopt : found.front();
  }

 private:
  storage::Database& db(Target t) {
    const int key = t.global ? -1 : t.shard;
    auto it = open_.find(key);
    if (it != open_.end()) return *it->second;

    const fs::path file =
        dir_ / (t.global ? storage::GlobalFileName() : storage::ShardFileName(t.shard));
    storage::Options options;
    options.create = false;
    options.read_only = true;
    // Analysts read whole collections after a run; the size defaults guard
    // a live server, not a file on the analyst's own machine. Time is still
    // bounded, so that a runaway query ends with an error.
    options.query_row_limit = std::size_t{1} << 40;
    options.query_byte_limit = std::size_t{1} << 40;
    options.query_time_limit = time_limit_;
    auto db = std::make_unique<storage::Database>(file, options);
    return *open_.emplace(key, std::move(db)).first->second;
  }

  fs::path dir_;
  int shards_;
  bool has_global_;
  std::chrono::milliseconds time_limit_;
  std::map<int, std::unique_ptr<storage::Database>> open_;
};

// Rethrows a failure to reach the server with what to do about address
// files left behind by a server that died.
[[noreturn]] void ThrowUnreachable(const Error& e, const fs::path& dir) {
  throw Error(ErrorCode::kUnavailable,
              std::string(e.what()) + ". The server named by the address files in '" +
                  dir.string() + "' does not answer; if the run has ended, the server died "
                  "without cleaning up: remove " + (dir / "provider.address.*").string() +
                  " to query the files directly");
}

// The client connects to each instance on first use, so any call may be the
// one that finds the server gone.
class OnlineSource : public Source {
 public:
  OnlineSource(client::Client c, fs::path dir) : client_(std::move(c)), dir_(std::move(dir)) {}

  bool online() const override { return true; }
  int num_shards() const override { return client_.num_shards(); }

  std::vector<std::string> list_collections(Target t) override {
    return Call([&] { return db(t).list_collections(); });
  }
  QueryResult query(Target t, std::string_view sql) override {
    return Call([&] { return db(t).query(sql); });
  }
  std::vector<Record> filter(Target t, std::string_view c, std::string_view e) override {
    return Call([&] { return db(t).collection(c).filter(e); });
  }
  int64_t count(Target t, std::string_view c, std::string_view e) override {
    return Call([&] { return db(t).collection(c).count(e); });
  }
  int64_t size(Target t, std::string_view c) override {
    return Call([&] { return db(t).collection(c).size(); });
  }
  std::vector<Record> all(Target t, std::string_view c) override {
    return Call([&] { return db(t).collection(c).all(); });
  }
  std::optional<Record> fetch(Target t, std::string_view c, int64_t id) override {
    auto found = Call([&] { return db(t).collection(c).fetch_multi({id}); });
    return found.empty() ? std::nullopt : found.front();
  }

 private:
  client::Database& db(Target t) { return t.global ? client_.global() : client_.shard(t.shard); }

  template <typename F>
  auto Call(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kTimeout && e.code() != ErrorCode::kUnavailable) throw;
      ThrowUnreachable(e, dir_);
    }
  }

  client::Client client_;
  fs::path dir_;
};

std::unique_ptr<Source> ConnectOnline(const fs::path& dir, const SourceOptions& options) {
  client::ClientOptions co;
  co.connect_timeout = options.timeout;
  // A query may take its whole time limit before the reply comes.
  co.request_timeout = std::max({options.timeout, std::chrono::milliseconds(60'000),
                                 options.query_time_limit + std::chrono::seconds(10)});
  co.query_time_limit = options.query_time_limit;
  co.query_row_limit = std::size_t{1} << 40;
  try {
    return std::make_unique<OnlineSource>(client::Client::ConnectTool(dir, co), dir);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kTimeout && e.code() != ErrorCode::kUnavailable) throw;
    ThrowUnreachable(e, dir);
  }
}

}  // namespace

std::string Target::describe() const {
  return global ? std::string("the global database") : "shard " + std::to_string(shard);
}

std::vector<Target> Source::shards() const {
  std::vector<Target> out;
  for (int k = 0; k < num_shards(); ++k) out.push_back(Target::Shard(k));
  return out;
}

void CheckShardOption(std::optional<int> shard) {
  if (!shard || *shard >= 0) return;
  throw Error(ErrorCode::kInvalidArgument,
              "--shard " + std::to_string(*shard) +
                  " is not a shard: shards are numbered from 0; leave --shard out to use "
                  "every shard");
}

std::vector<Target> SelectTargets(const Source& source, const std::string& dir, bool global,
                                  std::optional<int> shard) {
  CheckShardOption(shard);
  if (global) return {Target::Global()};
  if (!shard) return source.shards();
  if (*shard >= source.num_shards()) {
    throw Error(ErrorCode::kInvalidArgument,
                "shard " + std::to_string(*shard) + " does not exist: '" + dir + "' has " +
                    std::to_string(source.num_shards()) + " shards, numbered from 0");
  }
  return {Target::Shard(*shard)};
}

DirState InspectDir(const fs::path& dir) {
  DirState state;
  std::error_code ec;
  state.exists = fs::is_directory(dir, ec);
  if (!state.exists) {
    state.not_directory = fs::exists(dir, ec);
    return state;
  }

  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kAddressPrefix, 0) != 0) continue;
    try {
      state.live_instances.push_back(std::stoi(name.substr(std::string(kAddressPrefix).size())));
    } catch (const std::exception&) {
      // Not one of ours (for example an editor's backup file).
    }
  }
  while (fs::exists(dir / storage::ShardFileName(state.shard_files), ec)) ++state.shard_files;
  state.global_file = fs::exists(dir / storage::GlobalFileName(), ec);
  return state;
}

void RefuseNonDirectory(const fs::path& dir, const DirState& state, const std::string& option) {
  if (!state.not_directory) return;
  throw Error(ErrorCode::kInvalidArgument,
              option + " '" + dir.string() + "' is not a directory; " + option +
                  " names the directory of a run (the one given to provdb replay, serve or "
                  "import), which holds its provdb.<k>.sqlite files");
}

std::unique_ptr<Source> OpenSource(const fs::path& dir, const SourceOptions& options) {
  const DirState state = InspectDir(dir);
  RefuseNonDirectory(dir, state);
  if (!state.exists) {
    throw Error(ErrorCode::kNotFound,
                "database directory '" + dir.string() +
                    "' does not exist; give the --dir of a run (provdb replay --dir " +
                    dir.string() + " makes one)");
  }
  if (state.live()) return ConnectOnline(dir, options);

  if (options.require_online) {
    throw Error(ErrorCode::kUnavailable,
                "no server is running for '" + dir.string() +
                    "' (no provider.address.* file there); start one with provdb serve --dir " +
                    dir.string() + ", or drop --online to read the files directly");
  }
  if (state.shard_files == 0 && !state.global_file) {
    throw Error(ErrorCode::kNotFound,
                "'" + dir.string() +
                    "' holds no provdb database (no provdb.<k>.sqlite files) and no server "
                    "is running for it (no provider.address.* files); check --dir");
  }
  return std::make_unique<OfflineSource>(dir, state, options.query_time_limit);
}

}  // namespace provdb::cli
