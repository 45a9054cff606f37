// The client library: finding instances through the address directory, and
// turning each collection call into one request on the instance's
// connection.
#include "client/client.hpp"

#include <spdlog/spdlog.h>

#include <fstream>
#include <map>
#include <mutex>

#include "client/connection.hpp"
#include "protocol/address_dir.hpp"
#include "protocol/protocol.hpp"

namespace provdb::client {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// One ZeroMQ context for every client of the process: its IO thread is
// shared, and it is never terminated, so that clients destroyed during
// static destruction cannot block on it.
zmq::context_t& SharedContext() {
  static auto* context = new zmq::context_t(1);
  return *context;
}

// A frame that takes over the string's buffer instead of copying it.
zmq::message_t OwnedFrame(std::string&& text) {
  auto* owned = new std::string(std::move(text));
  return zmq::message_t(
      owned->data(), owned->size(),
      [](void*, void* hint) { delete static_cast<std::string*>(hint); }, owned);
}

std::string Label(const std::string& database, const std::string& collection) {
  const std::string db = database == protocol::kGlobalDatabase ? "global database"
                                                                : "shard " + database;
  return collection.empty() ? db : db + " collection " + collection;
}

// A frame over the server's limit would make ZeroMQ drop the whole
// connection; refuse such a document here, with a message that says why.
void CheckSize(std::string_view doc, std::size_t index) {
  if (doc.size() > protocol::kMaxFrameBytes) {
    throw Error(ErrorCode::kBadDocument,
                "document " + std::to_string(index) + " has " + std::to_string(doc.size()) +
                    " bytes, over the limit of " +
                    std::to_string(storage::kDefaultMaxDocumentBytes) + " bytes per document");
  }
}

std::vector<int64_t> Ids(const nlohmann::json& header) {
  return header.at("ids").get<std::vector<int64_t>>();
}

std::vector<bool> Bools(const nlohmann::json& header, const char* field) {
  return header.at(field).get<std::vector<bool>>();
}

std::vector<Record> Records(Reply& reply) {
  const auto ids = Ids(reply.header);
  if (ids.size() != reply.frames.size()) {
    throw Error(ErrorCode::kProtocol, "reply carries " + std::to_string(ids.size()) +
                                          " ids but " + std::to_string(reply.frames.size()) +
                                          " records");
  }
  std::vector<Record> records;
  records.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    records.push_back(Record{ids[i], std::string(reply.frames[i].to_string_view())});
  }
  return records;
}

}  // namespace

// --- Collection ---

Collection::Collection(std::shared_ptr<Connection> conn, std::string database, std::string name)
    : conn_(std::move(conn)), database_(std::move(database)), name_(std::move(name)) {}

namespace {

nlohmann::json Header(const char* op, const std::string& database, const std::string& name) {
  return nlohmann::json{{"op", op}, {"db", database}, {"coll", name}};
}

std::string StoreWhat(std::size_t count, const std::string& database, const std::string& name) {
  return "store of " + std::to_string(count) + " documents into " + Label(database, name);
}

}  // namespace

int64_t Collection::store(std::string_view json) const {
  return store_multi({std::string(json)}).at(0);
}

std::vector<int64_t> Collection::store_multi(const std::vector<std::string>& docs) const {
  std::vector<zmq::message_t> payload;
  payload.reserve(docs.size());
  for (std::size_t i = 0; i < docs.size(); ++i) {
    CheckSize(docs[i], i);
    payload.emplace_back(docs[i].data(), docs[i].size());
  }
  auto reply = conn_->Call(Header("store", database_, name_), std::move(payload),
                           StoreWhat(docs.size(), database_, name_));
  return Ids(reply.header);
}

PendingIds Collection::store_async(std::string json) const {
  // The handle of a single document resolves to a one-element vector of ids.
  std::vector<std::string> docs;
  docs.push_back(std::move(json));
  return store_multi_async(std::move(docs));
}

PendingIds Collection::store_multi_async(std::vector<std::string> docs) const {
  std::vector<zmq::message_t> payload;
  payload.reserve(docs.size());
  for (std::size_t i = 0; i < docs.size(); ++i) CheckSize(docs[i], i);
  for (auto& doc : docs) payload.push_back(OwnedFrame(std::move(doc)));

  auto promise = std::make_shared<std::promise<std::vector<int64_t>>>();
  PendingIds pending(promise->get_future().share());
  conn_->Submit(Header("store", database_, name_), std::move(payload),
                StoreWhat(docs.size(), database_, name_),
                [promise](Reply* reply, std::exception_ptr error) {
                  if (error) {
                    promise->set_exception(error);
                    return;
                  }
                  try {
                    promise->set_value(Ids(reply->header));
                  } catch (...) {
                    promise->set_exception(std::current_exception());
                  }
                });
  return pending;
}

void Collection::store_multi_nowait(std::vector<std::string> docs) const {
  std::vector<zmq::message_t> payload;
  payload.reserve(docs.size());
  for (std::size_t i = 0; i < docs.size(); ++i) CheckSize(docs[i], i);
  for (auto& doc : docs) payload.push_back(OwnedFrame(std::move(doc)));

  const std::string what = StoreWhat(docs.size(), database_, name_);
  // The callback holds the window, not the connection: it runs and is
  // destroyed on the connection's own thread, which must never hold the last
  // reference to its connection.
  auto window = conn_->window();
  conn_->Submit(Header("store", database_, name_), std::move(payload), what,
                [what, window](Reply*, std::exception_ptr error) {
                  if (!error) return;
                  window->failed_sends.fetch_add(1);
                  try {
                    std::rethrow_exception(error);
                  } catch (const std::exception& e) {
                    spdlog::warn("provdb: {} failed: {}", what, e.what());
                  }
                });
}

Record Collection::fetch(int64_t id) const {
  auto records = fetch_multi({id});
  if (!records.at(0)) {
    throw Error(ErrorCode::kNotFound,
                "no record " + std::to_string(id) + " in " + Label(database_, name_));
  }
  return std::move(*records[0]);
}

std::vector<std::optional<Record>> Collection::fetch_multi(const std::vector<int64_t>& ids) const {
  auto header = Header("fetch", database_, name_);
  header["ids"] = ids;
  auto reply = conn_->Call(std::move(header), {},
                           "fetch of " + std::to_string(ids.size()) + " records from " +
                               Label(database_, name_));
  if (reply.frames.size() != ids.size()) {
    throw Error(ErrorCode::kProtocol, "fetch reply carries " +
                                          std::to_string(reply.frames.size()) + " frames for " +
                                          std::to_string(ids.size()) + " ids");
  }

  std::vector<std::optional<Record>> records(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (reply.frames[i].size() > 0) {
      records[i] = Record{ids[i], std::string(reply.frames[i].to_string_view())};
    }
  }
  return records;
}

namespace {

void AddLimits(nlohmann::json& header, const ClientOptions& options) {
  if (options.query_time_limit.count() > 0) header["time_ms"] = options.query_time_limit.count();
  if (options.query_row_limit > 0) header["rows"] = options.query_row_limit;
}

}  // namespace

std::vector<Record> Collection::filter(std::string_view expression) const {
  auto header = Header("filter", database_, name_);
  header["expr"] = std::string(expression);
  AddLimits(header, conn_->options());
  auto reply = conn_->Call(
      std::move(header), {},
      "filter '" + std::string(expression) + "' on " + Label(database_, name_));
  return Records(reply);
}

int64_t Collection::count(std::string_view expression) const {
  auto header = Header("count", database_, name_);
  header["expr"] = std::string(expression);
  AddLimits(header, conn_->options());
  auto reply = conn_->Call(std::move(header), {},
                           "count '" + std::string(expression) + "' on " + Label(database_, name_));
  return reply.header.at("count").get<int64_t>();
}

bool Collection::update(int64_t id, std::string_view json) const {
  return update_multi({{id, std::string(json)}}).at(0);
}

std::vector<bool> Collection::update_multi(
    const std::vector<std::pair<int64_t, std::string>>& docs) const {
  auto header = Header("update", database_, name_);
  nlohmann::json ids = nlohmann::json::array();
  std::vector<zmq::message_t> payload;
  for (const auto& [id, doc] : docs) {
    CheckSize(doc, ids.size());
    ids.push_back(id);
    payload.emplace_back(doc.data(), doc.size());
  }
  header["ids"] = std::move(ids);
  auto reply = conn_->Call(std::move(header), std::move(payload),
                           "update of " + std::to_string(docs.size()) + " records in " +
                               Label(database_, name_));
  return Bools(reply.header, "updated");
}

bool Collection::erase(int64_t id) const { return erase_multi({id}).at(0); }

std::vector<bool> Collection::erase_multi(const std::vector<int64_t>& ids) const {
  auto header = Header("erase", database_, name_);
  header["ids"] = ids;
  auto reply = conn_->Call(std::move(header), {},
                           "erase of " + std::to_string(ids.size()) + " records from " +
                               Label(database_, name_));
  return Bools(reply.header, "erased");
}

std::vector<Record> Collection::all() const {
  auto reply = conn_->Call(Header("all", database_, name_), {},
                           "all records of " + Label(database_, name_));
  return Records(reply);
}

int64_t Collection::size() const {
  auto reply = conn_->Call(Header("size", database_, name_), {},
                           "size of " + Label(database_, name_));
  return reply.header.at("size").get<int64_t>();
}

std::optional<int64_t> Collection::last_record_id() const {
  auto reply = conn_->Call(Header("last_id", database_, name_), {},
                           "last record id of " + Label(database_, name_));
  const auto& last = reply.header.at("last_id");
  if (last.is_null()) return std::nullopt;
  return last.get<int64_t>();
}

// --- Database ---

Database::Database(std::shared_ptr<Connection> conn, std::string database)
    : conn_(std::move(conn)), database_(std::move(database)) {}

Collection Database::collection(std::string_view name) const {
  return Collection(conn_, database_, std::string(name));
}

Collection Database::create_collection(std::string_view name) const {
  auto header = Header("create_collection", database_, std::string(name));
  conn_->Call(std::move(header), {}, "create of " + Label(database_, std::string(name)));
  return collection(name);
}

std::vector<std::string> Database::list_collections() const {
  auto reply = conn_->Call(nlohmann::json{{"op", "list_collections"}, {"db", database_}}, {},
                           "list of the collections of " + Label(database_, ""));
  return reply.header.at("collections").get<std::vector<std::string>>();
}

QueryResult Database::query(std::string_view sql) const {
  nlohmann::json header{{"op", "query"}, {"db", database_}, {"sql", std::string(sql)}};
  AddLimits(header, conn_->options());
  auto reply = conn_->Call(std::move(header), {}, "query on " + Label(database_, ""));

  QueryResult result;
  result.columns = reply.header.at("columns").get<std::vector<std::string>>();
  for (const auto& row : reply.header.at("rows")) {
    std::vector<storage::SqlValue> values;
    for (const auto& value : row) values.push_back(protocol::SqlValueFromJson(value));
    result.rows.push_back(std::move(values));
  }
  return result;
}

// --- Client ---

struct Client::Impl {
  fs::path dir;
  ClientOptions options;
  Hello hello;
  protocol::ShardMap map;
  std::shared_ptr<Window> window;
  std::string home;  // the database of database(); empty for tools

  std::mutex mutex;
  std::map<int, std::shared_ptr<Connection>> connections;  // by instance
  std::map<std::string, std::unique_ptr<Database>> databases;
  bool disconnected = false;

  static std::unique_ptr<Impl> Create(const fs::path& dir, ClientOptions options, Hello hello);
  void LoadMap(Clock::time_point deadline);
  std::shared_ptr<Connection> ConnectionTo(int instance, Clock::time_point deadline);
  Database& DatabaseNamed(const std::string& name, int instance);
  std::chrono::milliseconds Left(Clock::time_point deadline) const;
};

std::chrono::milliseconds Client::Impl::Left(Clock::time_point deadline) const {
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
}

void Client::Impl::LoadMap(Clock::time_point deadline) {
  const std::string text =
      protocol::WaitForFile(dir, protocol::kMapFileName, Left(deadline),
                            "the shard map written by server instance 0");
  map = protocol::ShardMap::Parse(text, (dir / std::string(protocol::kMapFileName)).string());
}

std::shared_ptr<Connection> Client::Impl::ConnectionTo(int instance,
                                                       Clock::time_point deadline) {
  if (disconnected) {
    throw Error(ErrorCode::kUnavailable, "the client has disconnected from " + dir.string());
  }
  auto it = connections.find(instance);
  if (it != connections.end()) return it->second;

  const std::string name = protocol::AddressFileName(instance);
  const std::string origin = (dir / name).string();
  const std::string text = protocol::WaitForFile(
      dir, name, Left(deadline), "the address of server instance " + std::to_string(instance));
  auto conn = std::make_shared<Connection>(SharedContext(), protocol::ParseAddress(text, origin),
                                           origin, hello, options, Left(deadline), window);
  connections.emplace(instance, conn);
  return conn;
}

Database& Client::Impl::DatabaseNamed(const std::string& name, int instance) {
  std::lock_guard lock(mutex);
  auto it = databases.find(name);
  if (it != databases.end() && !disconnected) return *it->second;

  auto conn = ConnectionTo(instance, Clock::now() + options.connect_timeout);
  auto db = std::make_unique<Database>(conn, name);
  Database& ref = *db;
  databases[name] = std::move(db);
  return ref;
}

std::unique_ptr<Client::Impl> Client::Impl::Create(const fs::path& dir, ClientOptions options,
                                                   Hello hello) {
  auto impl = std::make_unique<Client::Impl>();
  impl->dir = dir;
  impl->options = options;
  impl->hello = std::move(hello);
  impl->window = std::make_shared<Window>(options.max_outstanding);
  impl->LoadMap(Clock::now() + options.connect_timeout);
  return impl;
}

namespace {

int ShardFromAssignment(const fs::path& assignment, int rank) {
  std::ifstream in(assignment);
  if (!in) {
    throw Error(ErrorCode::kNotFound,
                "cannot read the shard assignment file " + assignment.string());
  }
  std::string line;
  for (int i = 0; i <= rank; ++i) {
    if (!std::getline(in, line)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "shard assignment file " + assignment.string() + " has no line for rank " +
                      std::to_string(rank) + " (it has " + std::to_string(i) + " lines)");
    }
  }
  try {
    return std::stoi(line);
  } catch (const std::exception&) {
    throw Error(ErrorCode::kInvalidArgument, "line " + std::to_string(rank) + " of " +
                                                 assignment.string() + " is not a shard index: '" +
                                                 line + "'");
  }
}

}  // namespace

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    if (impl_) {
      try {
        disconnect();
      } catch (...) {
      }
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Client::~Client() {
  if (!impl_) return;
  try {
    disconnect();
  } catch (const std::exception& e) {
    spdlog::warn("provdb: disconnecting from {} failed: {}", impl_->dir.string(), e.what());
  }
}

Client Client::ConnectRank(const fs::path& dir, int rank, ClientOptions options) {
  if (rank < 0) {
    throw Error(ErrorCode::kInvalidArgument, "rank must be >= 0, got " + std::to_string(rank));
  }
  auto impl = Impl::Create(dir, options, Hello{std::string(protocol::kRoleRank), rank});
  const int shard = rank % impl->map.num_shards();
  impl->home = protocol::ShardDatabaseName(shard);
  impl->DatabaseNamed(impl->home, impl->map.shard_instance[shard]);
  return Client(std::move(impl));
}

Client Client::ConnectRank(const fs::path& dir, int rank, const fs::path& assignment,
                           ClientOptions options) {
  if (rank < 0) {
    throw Error(ErrorCode::kInvalidArgument, "rank must be >= 0, got " + std::to_string(rank));
  }
  const int shard = ShardFromAssignment(assignment, rank);
  auto impl = Impl::Create(dir, options, Hello{std::string(protocol::kRoleRank), rank});
  if (shard < 0 || shard >= impl->map.num_shards()) {
    throw Error(ErrorCode::kInvalidArgument,
                "shard " + std::to_string(shard) + " for rank " + std::to_string(rank) + " in " +
                    assignment.string() + " is outside 0.." +
                    std::to_string(impl->map.num_shards() - 1));
  }
  impl->home = protocol::ShardDatabaseName(shard);
  impl->DatabaseNamed(impl->home, impl->map.shard_instance[shard]);
  return Client(std::move(impl));
}

Client Client::ConnectGlobal(const fs::path& dir, ClientOptions options) {
  auto impl = Impl::Create(dir, options, Hello{std::string(protocol::kRoleParameterServer), -1});
  impl->home = std::string(protocol::kGlobalDatabase);
  impl->DatabaseNamed(impl->home, impl->map.global_instance);
  return Client(std::move(impl));
}

Client Client::ConnectTool(const fs::path& dir, ClientOptions options) {
  return Client(Impl::Create(dir, options, Hello{std::string(protocol::kRoleTool), -1}));
}

int Client::num_shards() const { return impl_->map.num_shards(); }
int Client::num_instances() const { return impl_->map.num_instances(); }

Database& Client::database() {
  if (impl_->home.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "a tool client has no database of its own; use shard(k) or global()");
  }
  return impl_->DatabaseNamed(impl_->home, impl_->home == protocol::kGlobalDatabase
                                               ? impl_->map.global_instance
                                               : impl_->map.shard_instance[std::stoi(impl_->home)]);
}

Database& Client::shard(int k) {
  if (k < 0 || k >= num_shards()) {
    throw Error(ErrorCode::kInvalidArgument, "shard " + std::to_string(k) + " is outside 0.." +
                                                 std::to_string(num_shards() - 1));
  }
  return impl_->DatabaseNamed(protocol::ShardDatabaseName(k), impl_->map.shard_instance[k]);
}

Database& Client::global() {
  return impl_->DatabaseNamed(std::string(protocol::kGlobalDatabase),
                              impl_->map.global_instance);
}

void Client::wait_all() { impl_->window->WaitIdle(); }

std::size_t Client::failed_sends() const { return impl_->window->failed_sends.load(); }

nlohmann::json Client::status() {
  nlohmann::json all = nlohmann::json::array();
  for (int i = 0; i < num_instances(); ++i) {
    std::error_code ec;
    if (!fs::exists(impl_->dir / protocol::AddressFileName(i), ec)) {
      all.push_back({{"instance", i}, {"instances", num_instances()}, {"running", false}});
      continue;
    }

    std::shared_ptr<Connection> conn;
    {
      std::lock_guard lock(impl_->mutex);
      conn = impl_->ConnectionTo(i, Clock::now() + impl_->options.connect_timeout);
    }
    auto reply = conn->Call(nlohmann::json{{"op", "status"}}, {},
                            "status of instance " + std::to_string(i));
    nlohmann::json status = reply.header.at("status");
    status["running"] = true;
    all.push_back(std::move(status));
  }
  return all;
}

int Client::stop_servers() {
  int stopped = 0;
  for (int i = 0; i < num_instances(); ++i) {
    // An instance without an address file is not running: nothing to stop.
    std::error_code ec;
    if (!fs::exists(impl_->dir / protocol::AddressFileName(i), ec)) continue;

    std::shared_ptr<Connection> conn;
    {
      std::lock_guard lock(impl_->mutex);
      conn = impl_->ConnectionTo(i, Clock::now() + impl_->options.connect_timeout);
    }
    conn->Call(nlohmann::json{{"op", "stop"}}, {}, "stop of instance " + std::to_string(i));
    conn->ServerStopping();
    ++stopped;
  }
  return stopped;
}

void Client::disconnect() {
  std::map<int, std::shared_ptr<Connection>> connections;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->disconnected) return;
    impl_->disconnected = true;
    connections.swap(impl_->connections);
  }

  // Every request in flight ends, with its reply or its timeout, before the
  // goodbye, so that nothing acknowledged is left unread.
  impl_->window->WaitIdle();
  for (auto& [instance, conn] : connections) conn->Close();
}

}  // namespace provdb::client
