// The C++ client library of provdb, embedded by anomaly-detection ranks, the
// parameter server and query tools.
//
// A Client finds the server instances through the address directory they
// write (provider.address.<instance> and provider.map), opens one connection
// per instance it needs (shards on the same instance share it), says hello
// with its role, and says goodbye in disconnect() or its destructor.
//
// Threads: a Client and the Database and Collection handles it gives out may
// be used from several threads at once; every call is safe to make
// concurrently. Asynchronous calls return at once with a handle; a background
// thread per client sends requests and takes replies. At most
// ClientOptions::max_outstanding requests are in flight; a further
// asynchronous call waits until one completes, so memory stays bounded.
//
// Errors: every failure throws provdb::Error (common/error.hpp); an error
// raised by the server is rethrown with the server's code and message, a
// server that does not answer within the timeout gives kTimeout naming the
// address and the request, and a connection that drops fails the requests in
// flight on it at once with kUnavailable. A server drops a client it has not
// heard from for its --client-timeout (keep-alives normally prevent that);
// every later request of that client fails with kProtocol, telling it to
// connect anew.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "storage/database.hpp"

namespace provdb::client {

using storage::QueryResult;
using storage::Record;

struct ClientOptions {
  // How long to wait for the address files of the needed instances to appear
  // and for each hello to be answered.
  std::chrono::milliseconds connect_timeout{30'000};
  // How long any single request may wait for its reply.
  std::chrono::milliseconds request_timeout{60'000};
  // Asynchronous requests in flight at once, per client.
  std::size_t max_outstanding = 64;
  // A connection that has sent nothing for this long sends a keep-alive, so
  // that the server does not take an idle client for one that vanished. Keep
  // it well below the servers' --client-timeout (10 s by default); 0 sends
  // none.
  std::chrono::milliseconds heartbeat_interval{1'000};
  // Query limits passed to the server with filter/query calls (0: server's).
  std::chrono::milliseconds query_time_limit{0};
  std::size_t query_row_limit = 0;
};

// What a client is, told to the server at hello. Ranks and the parameter
// server count for autoshutdown; tools do not.
enum class Role { kRank, kParameterServer, kTool };

// The ids assigned to an asynchronous store, once the server has committed it.
class PendingIds {
 public:
  PendingIds() = default;
  explicit PendingIds(std::shared_future<std::vector<int64_t>> ids) : ids_(std::move(ids)) {}
  // Waits for the server's acknowledgement; rethrows its error if it failed.
  const std::vector<int64_t>& wait() const { return ids_.get(); }
  bool ready() const {
    return ids_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }

 private:
  std::shared_future<std::vector<int64_t>> ids_;
};

class Connection;  // one instance's socket; internal

// One collection of one database. Cheap to copy; valid while its Client is.
class Collection {
 public:
  Collection(std::shared_ptr<Connection> conn, std::string database, std::string name);

  const std::string& name() const { return name_; }

  // Synchronous: return when the server has committed the records.
  int64_t store(std::string_view json) const;
  std::vector<int64_t> store_multi(const std::vector<std::string>& docs) const;
  // Asynchronous: return once the request is queued for sending.
  PendingIds store_async(std::string json) const;
  PendingIds store_multi_async(std::vector<std::string> docs) const;
  // Fire and forget: errors are logged and counted, see Client::failed_sends().
  void store_multi_nowait(std::vector<std::string> docs) const;

  Record fetch(int64_t id) const;  // kNotFound when absent
  std::vector<std::optional<Record>> fetch_multi(const std::vector<int64_t>& ids) const;
  std::vector<Record> filter(std::string_view expression) const;
  int64_t count(std::string_view expression) const;
  bool update(int64_t id, std::string_view json) const;
  std::vector<bool> update_multi(const std::vector<std::pair<int64_t, std::string>>& docs) const;
  bool erase(int64_t id) const;
  std::vector<bool> erase_multi(const std::vector<int64_t>& ids) const;
  std::vector<Record> all() const;
  int64_t size() const;
  std::optional<int64_t> last_record_id() const;

 private:
  std::shared_ptr<Connection> conn_;
  std::string database_;  // "<k>" for shard k, "global" for the global database
  std::string name_;
};

// One database (a shard or the global database) on its instance.
class Database {
 public:
  Database(std::shared_ptr<Connection> conn, std::string database);

  const std::string& name() const { return database_; }  // "<k>" or "global"
  Collection collection(std::string_view name) const;  // no round trip
  Collection create_collection(std::string_view name) const;
  std::vector<std::string> list_collections() const;
  QueryResult query(std::string_view sql) const;

 private:
  std::shared_ptr<Connection> conn_;
  std::string database_;
};

class Client {
 public:
  // Rank r writes to shard r mod N.
  static Client ConnectRank(const std::filesystem::path& dir, int rank,
                            ClientOptions options = {});
  // Rank r writes to the shard on line r (counting from 0) of `assignment`.
  static Client ConnectRank(const std::filesystem::path& dir, int rank,
                            const std::filesystem::path& assignment,
                            ClientOptions options = {});
  // The parameter server: the global database.
  static Client ConnectGlobal(const std::filesystem::path& dir, ClientOptions options = {});
  // A tool: every shard and the global database, connecting lazily.
  static Client ConnectTool(const std::filesystem::path& dir, ClientOptions options = {});

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();  // waits for outstanding sends (up to the request timeout), says goodbye

  int num_shards() const;
  int num_instances() const;
  // The rank's shard (ConnectRank), else the global database (ConnectGlobal).
  Database& database();
  Database& shard(int k);
  Database& global();

  // Waits until every asynchronous request so far has been answered.
  void wait_all();
  // Fire-and-forget sends that failed since the client started.
  std::size_t failed_sends() const;

  // Status of every instance: a JSON array with one object per instance
  // (docs/protocol.md); an instance without an address file is given as
  // {"instance": i, "instances": m, "running": false}.
  nlohmann::json status();
  // Asks every running instance (those with an address file) to stop
  // gracefully and returns how many were asked, once each has acknowledged.
  // An instance is done when its address file is gone.
  int stop_servers();

  // Says goodbye to every instance; later calls throw kUnavailable.
  void disconnect();

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace provdb::client
