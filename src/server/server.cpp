// The IO thread of a server instance: reads requests from the ROUTER sockets,
// answers session requests (hello, goodbye, stop, status) itself, hands
// writes to the database's writer and reads to the reader pool, forwards the
// workers' replies, and runs the graceful stop.
//
// Two ROUTER sockets: the main one, in the address file, takes every
// request; the read one, told to clients at hello, takes reads only. When a
// write queue is full the IO thread stops reading the main socket (that is
// the backpressure) but keeps reading the read socket, so that a query
// during a flood of writes does not wait for the writers.
//
// Leases: every message from a client renews its lease (idle clients send
// pings). A client silent for longer than the client timeout is dropped as
// vanished, as if it had said goodbye, so that a killed rank does not keep
// the instance from shutting down. Its acknowledged writes were committed
// before their acknowledgement, so dropping it loses nothing stored.
#include "server/server.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/error.hpp"
#include "protocol/address_dir.hpp"
#include "protocol/protocol.hpp"
#include "server/operations.hpp"
#include "server/reader_pool.hpp"
#include "server/request.hpp"
#include "server/writer.hpp"

namespace provdb::server {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using protocol::Op;

namespace {

// Per client, requests ZeroMQ buffers before it stops reading that client's
// TCP connection. With the per-database queues this bounds the server's
// memory: with many clients sending large batches, these buffers dominate.
constexpr int kRouterReceiveHwm = 4;
// Replies are bounded by each client's window of outstanding requests; this
// only guards against a peer that never reads its replies.
constexpr int kRouterSendHwm = 100'000;
// Messages taken from a socket before looking at the others again.
constexpr int kBurst = 256;
constexpr auto kRateWindow = std::chrono::seconds(10);

const char* const kShardCollections[] = {"anomalies", "normalexecs", "metadata"};
const char* const kGlobalCollections[] = {"func_stats", "counter_stats", "ad_model"};

struct Hosted {
  std::string name;  // "<k>" or "global"
  fs::path path;
  std::unique_ptr<storage::Database> db;
  std::unique_ptr<Writer> writer;
};

struct Peer {
  std::string role;
  int rank = -1;
  Clock::time_point since;
  Clock::time_point last_heard;  // the last message of any kind from it
};

std::string DescribePeer(const Peer& peer) {
  if (peer.role == protocol::kRoleRank) return "rank " + std::to_string(peer.rank);
  if (peer.role == protocol::kRoleParameterServer) return "parameter server";
  return "tool";
}

std::string PeerKey(const Request& request) {
  return static_cast<char>(request.route) + std::string(request.identity.to_string_view());
}

// The highest k of the provdb.<k>.sqlite files in `dir`, or -1.
int HighestShardFile(const fs::path& dir) {
  int highest = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const std::string prefix = "provdb.";
    const std::string suffix = ".sqlite";
    if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
        !name.ends_with(suffix)) {
      continue;
    }
    const std::string k = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (k.size() > 9 || k.find_first_not_of("0123456789") != std::string::npos) continue;
    highest = std::max(highest, std::stoi(k));
  }
  return highest;
}

std::string DatabaseLabel(const std::string& name) {
  return name == protocol::kGlobalDatabase ? "global" : "shard " + name;
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  protocol::ShardMap map;
  Clock::time_point started = Clock::now();

  zmq::context_t context{1};
  zmq::socket_t router{context, zmq::socket_type::router};
  zmq::socket_t read_router{context, zmq::socket_type::router};
  zmq::socket_t replies{context, zmq::socket_type::pull};
  std::string endpoint;
  std::string read_endpoint;
  fs::path address_file;
  // Open for the instance's lifetime: it holds the flock on
  // DIR/provider.lock.<I>. The kernel releases the lock when the process
  // ends, however it ends, so a killed instance leaves no stale lock.
  int lock_fd = -1;

  std::vector<std::unique_ptr<Hosted>> hosted;
  std::map<std::string, Hosted*, std::less<>> by_name;
  std::unique_ptr<ReaderPool> readers;

  // Signal handlers and other threads reach the IO thread through this pipe.
  int wake_pipe[2] = {-1, -1};
  std::atomic<const char*> requested_stop{nullptr};

  // IO thread only from here on.
  std::map<std::string, Peer> peers;  // key: route byte and ROUTER routing id
  int ranks_seen = 0;
  int vanished = 0;  // clients dropped after their lease ran out
  // While a queue is full the IO thread stops reading some sockets, so the
  // messages of live clients wait unread in ZeroMQ: silence before this
  // moment is the server's own doing and does not count against a lease.
  Clock::time_point reading_since = Clock::now();
  Clock::time_point next_lease_check = Clock::now();
  bool stopping = false;
  std::string stop_reason;
  bool workers_closed = false;
  std::size_t workers_done = 0;

  // At most one write and one read wait for room in a full queue. While a
  // write waits, the IO thread stops reading the main socket (that is the
  // backpressure); while a read waits, it stops reading both sockets.
  std::optional<Request> parked_write;
  Hosted* parked_target = nullptr;
  std::optional<ReaderPool::Task> parked_read;

  std::deque<std::tuple<Clock::time_point, uint64_t, uint64_t>> rate_samples;

  ~Impl();
  void LockInstance();
  void CheckEarlierRun() const;
  void OpenDatabases();
  void Bind();
  void Announce();

  std::string Run();
  void ForwardReplies();
  void ReadRequests(zmq::socket_t& socket, Route route);
  void RetryParked();
  void HandleMessage(std::vector<zmq::message_t>& frames, Route route);
  zmq::socket_t& RouterOf(Route route) { return route == Route::kReads ? read_router : router; }
  void Dispatch(Request& request);
  Error UnknownPeer() const;
  void HandleHello(Request& request);
  void HandleGoodbye(Request& request);
  void HandleStatus(Request& request);
  void SubmitRead(ReaderPool::Task task);
  void BeginStop(const std::string& reason);
  void CheckAutoshutdown();
  std::chrono::milliseconds LeaseCheckPeriod() const;
  void ExpireLeases();
  std::size_t ClientCount() const;
  void SampleRate();
  nlohmann::json StatusSnapshot();
  void Finish();

  int Workers() const { return static_cast<int>(hosted.size() + readers->threads()); }
  uint64_t RecordsStored() const {
    uint64_t total = 0;
    for (const auto& h : hosted) total += h->writer->records_stored();
    return total;
  }
  uint64_t BytesStored() const {
    uint64_t total = 0;
    for (const auto& h : hosted) total += h->writer->bytes_stored();
    return total;
  }
};

Server::Impl::~Impl() {
  // Whatever happened, the address file must not outlive the instance.
  if (!address_file.empty()) {
    std::error_code ec;
    fs::remove(address_file, ec);
  }
  for (int fd : wake_pipe) {
    if (fd >= 0) ::close(fd);
  }
  // Last, so that no second instance starts while this one still has files open.
  if (lock_fd >= 0) ::close(lock_fd);
}

void Server::Impl::LockInstance() {
  const fs::path path =
      options.dir / ("provider.lock." + std::to_string(options.instance));
  lock_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    throw Error(ErrorCode::kStorage, "cannot open the lock file " + path.string() + ": " +
                                         std::strerror(errno) +
                                         "; check that the directory is writable");
  }

  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    std::string holder;
    std::ifstream(path) >> holder;
    throw Error(ErrorCode::kUnavailable,
                "instance " + std::to_string(options.instance) + " of " + options.dir.string() +
                    " is already served by another provdb serve" +
                    (holder.empty() ? "" : " (pid " + holder + ")") + ", which holds " +
                    path.string() + "; stop it with provdb stop --dir " + options.dir.string() +
                    " or serve another directory");
  }

  // The pid is only for the message above; the flock is what excludes.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd, 0) != 0 || ::write(lock_fd, pid.data(), pid.size()) < 0) {
    spdlog::warn("cannot record the pid in {}: {}", path.string(), std::strerror(errno));
  }
}

// A run's shard count decides which shard each rank writes to and which
// instance hosts it, so a directory is served with one count for its life.
void Server::Impl::CheckEarlierRun() const {
  const int shards = options.num_shards;
  const fs::path map_path = options.dir / std::string(protocol::kMapFileName);
  int earlier = 0;
  std::string evidence;

  std::error_code ec;
  if (fs::exists(map_path, ec)) {
    std::ifstream in(map_path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    earlier = protocol::ShardMap::Parse(text, map_path.string()).num_shards();
    evidence = map_path.string();
  } else {
    // Instance 0 removes the map while it starts, so another instance
    // starting beside it may find only shard files. A file beyond the last
    // shard proves a larger count; fewer files prove a smaller count only
    // when a single instance created them all.
    const int files = HighestShardFile(options.dir) + 1;
    if (files > shards || (files > 0 && files < shards && options.num_instances == 1)) {
      earlier = files;
      evidence = "its files provdb.0.sqlite to provdb." + std::to_string(files - 1) + ".sqlite";
    }
  }

  if (earlier != 0 && earlier != shards) {
    const std::string n = std::to_string(earlier);
    throw Error(ErrorCode::kInvalidArgument,
                options.dir.string() + " holds a run with " + n + " shards (" + evidence +
                    "), not " + std::to_string(shards) + "; serve it with --shards " + n +
                    " or use a new directory");
  }
}

void Server::Impl::OpenDatabases() {
  storage::Options db_options;
  db_options.durability = options.durability;

  auto open = [&](const std::string& name, const fs::path& path,
                  const char* const* collections) {
    auto h = std::make_unique<Hosted>();
    h->name = name;
    h->path = path;
    h->db = std::make_unique<storage::Database>(path, db_options);
    for (int i = 0; i < 3; ++i) h->db->create_collection(collections[i], /*if_missing=*/true);
    spdlog::info("{} opened: {}", DatabaseLabel(name), path.string());
    by_name[name] = h.get();
    hosted.push_back(std::move(h));
  };

  for (int k : map.shards_of(options.instance)) {
    open(protocol::ShardDatabaseName(k), options.dir / storage::ShardFileName(k),
         kShardCollections);
  }
  if (map.global_instance == options.instance) {
    open(std::string(protocol::kGlobalDatabase), options.dir / storage::GlobalFileName(),
         kGlobalCollections);
  }
}

void Server::Impl::Bind() {
  const bool wildcard = options.address == "*" || options.address == "0.0.0.0";
  const std::string host = wildcard ? "*" : options.address;

  auto bind = [&](zmq::socket_t& socket, const std::string& port) {
    socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxFrameBytes));
    socket.set(zmq::sockopt::rcvhwm, kRouterReceiveHwm);
    socket.set(zmq::sockopt::sndhwm, kRouterSendHwm);
    socket.set(zmq::sockopt::linger, 2000);

    const std::string requested = "tcp://" + host + ":" + port;
    try {
      socket.bind(requested);
    } catch (const zmq::error_t& e) {
      if (e.num() == EADDRINUSE) {
        throw Error(ErrorCode::kUnavailable,
                    "cannot listen on " + requested + ": port " + port +
                        " is taken by another program; choose another --port, or leave it "
                        "out for a free port");
      }
      throw Error(ErrorCode::kUnavailable, "cannot listen on " + requested + ": " + e.what() +
                                               "; choose another --address or --port");
    }
    std::string bound = socket.get(zmq::sockopt::last_endpoint);

    // A wildcard endpoint cannot be connected to; advertise the host name.
    if (wildcard) {
      char name[256] = {};
      ::gethostname(name, sizeof(name) - 1);
      bound = "tcp://" + std::string(name) + bound.substr(bound.rfind(':'));
    }
    return bound;
  };
  endpoint = bind(router, options.port > 0 ? std::to_string(options.port) : "*");
  read_endpoint = bind(read_router, "*");

  replies.set(zmq::sockopt::rcvhwm, 0);
  replies.bind(kReplyEndpoint);
}

void Server::Impl::Announce() {
  if (options.instance == 0) {
    protocol::WriteFileAtomically(options.dir / std::string(protocol::kMapFileName),
                                  map.Format());
  }
  address_file = options.dir / protocol::AddressFileName(options.instance);
  protocol::WriteFileAtomically(address_file, endpoint + "\n");

  std::string names;
  for (const auto& h : hosted) names += (names.empty() ? "" : ", ") + DatabaseLabel(h->name);
  spdlog::info("instance {} of {} ready at {} serving {} (address file {})", options.instance,
               options.num_instances, endpoint, names, address_file.string());
}

std::string Server::Impl::Run() {
  while (true) {
    const bool parked = parked_write || parked_read;
    zmq::pollitem_t items[] = {
        {router.handle(), 0, static_cast<short>(parked ? 0 : ZMQ_POLLIN), 0},
        {read_router.handle(), 0, static_cast<short>(parked_read ? 0 : ZMQ_POLLIN), 0},
        {replies.handle(), 0, ZMQ_POLLIN, 0},
        {nullptr, wake_pipe[0], ZMQ_POLLIN, 0},
    };
    try {
      zmq::poll(items, 4, parked ? std::chrono::milliseconds(5) : LeaseCheckPeriod());
    } catch (const zmq::error_t& e) {
      // A stop signal interrupts the poll; the wake-up pipe says which.
      if (e.num() != EINTR) throw;
    }

    ForwardReplies();

    if (items[3].revents & ZMQ_POLLIN) {
      char drained[64];
      while (::read(wake_pipe[0], drained, sizeof(drained)) > 0) {
      }
      if (const char* reason = requested_stop.load()) BeginStop(reason);
    }

    RetryParked();
    if (!parked_read) ReadRequests(read_router, Route::kReads);
    if (!parked_write && !parked_read) ReadRequests(router, Route::kMain);
    SampleRate();
    ExpireLeases();

    // Stop: once nothing waits for a queue, let the workers drain theirs.
    // Their done markers arrive after their last reply.
    if (stopping && !parked_write && !parked_read && !workers_closed) {
      for (auto& h : hosted) h->writer->Close();
      readers->Close();
      workers_closed = true;
    }
    if (workers_closed && workers_done == static_cast<std::size_t>(Workers())) break;
  }

  Finish();
  return stop_reason;
}

void Server::Impl::ForwardReplies() {
  for (int i = 0; i < 4 * kBurst; ++i) {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(replies, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      return;
    }
    if (frames.size() == 1 && frames[0].size() == 0) {
      ++workers_done;
      continue;
    }
    // Drop the route frame; a peer that left is silently skipped by the ROUTER.
    const auto route = static_cast<Route>(*frames[0].data<uint8_t>());
    zmq::send_multipart(RouterOf(route), std::span(frames).subspan(1),
                        zmq::send_flags::dontwait);
  }
}

void Server::Impl::ReadRequests(zmq::socket_t& socket, Route route) {
  for (int i = 0; i < kBurst && !parked_read && !(route == Route::kMain && parked_write); ++i) {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      return;
    }
    HandleMessage(frames, route);
  }
}

void Server::Impl::RetryParked() {
  if (parked_write && parked_target->writer->TryPush(*parked_write)) {
    parked_write.reset();
    parked_target = nullptr;
  }
  if (parked_read && readers->TryPush(*parked_read)) parked_read.reset();
}

void Server::Impl::HandleMessage(std::vector<zmq::message_t>& frames, Route route) {
  if (frames.empty()) return;

  Request request;
  request.route = route;
  request.identity = std::move(frames[0]);

  // Anything a client sends, even a malformed request, shows it is alive.
  auto peer = peers.find(PeerKey(request));
  if (peer != peers.end()) peer->second.last_heard = Clock::now();

  try {
    if (frames.size() < 2) {
      throw Error(ErrorCode::kProtocol, "a request needs a JSON header frame");
    }
    auto header = nlohmann::json::parse(frames[1].data<char>(),
                                        frames[1].data<char>() + frames[1].size(), nullptr,
                                        /*allow_exceptions=*/false);
    if (header.is_discarded() || !header.is_object()) {
      throw Error(ErrorCode::kProtocol, "the request header is not a JSON object");
    }

    auto id = header.find("id");
    if (id == header.end() || !id->is_number_unsigned()) {
      throw Error(ErrorCode::kProtocol, "the request header lacks an unsigned integer \"id\"");
    }
    request.id = id->get<uint64_t>();

    const std::string op_name = HeaderString(header, "op");
    const auto op = protocol::ParseOp(op_name);
    if (!op) throw Error(ErrorCode::kProtocol, "unknown operation '" + op_name + "'");
    request.op = *op;

    request.bytes = frames[1].size();
    for (std::size_t i = 2; i < frames.size(); ++i) {
      request.bytes += frames[i].size();
      request.payload.push_back(std::move(frames[i]));
    }
    if (request.bytes > protocol::kMaxRequestBytes) {
      throw Error(ErrorCode::kInvalidArgument,
                  "request of " + std::to_string(request.bytes) + " bytes is over the limit of " +
                      std::to_string(protocol::kMaxRequestBytes) + "; send smaller batches");
    }
    request.header = std::move(header);

    Dispatch(request);
  } catch (const Error& e) {
    SendDirect(RouterOf(route), request.identity,
               protocol::ErrorHeader(request.id, e.code(), e.what()));
  } catch (const std::exception& e) {
    SendDirect(RouterOf(route), request.identity,
               protocol::ErrorHeader(request.id, ErrorCode::kProtocol,
                                     std::string("malformed request: ") + e.what()));
  }
}

void Server::Impl::Dispatch(Request& request) {
  switch (request.op) {
    case Op::kHello:
      return HandleHello(request);
    default:
      break;
  }

  auto peer = peers.find(PeerKey(request));
  if (peer == peers.end()) throw UnknownPeer();
  // Receiving it has renewed the lease; a ping asks for nothing else.
  if (request.op == Op::kPing) return;
  if (request.route == Route::kReads && request.op != Op::kGoodbye &&
      request.op != Op::kStatus && !protocol::IsRead(request.op)) {
    throw Error(ErrorCode::kProtocol, "the read endpoint takes reads only; send " +
                                          std::string(protocol::OpName(request.op)) +
                                          " to the endpoint of the address file");
  }

  switch (request.op) {
    case Op::kGoodbye:
      return HandleGoodbye(request);
    case Op::kStop:
      SendDirect(router, request.identity, protocol::OkHeader(request.id));
      return BeginStop("stop requested by " + DescribePeer(peer->second));
    case Op::kStatus:
      return HandleStatus(request);
    default:
      break;
  }

  if (stopping) {
    throw Error(ErrorCode::kUnavailable,
                "instance " + std::to_string(options.instance) + " is stopping (" + stop_reason +
                    "); the request was not applied");
  }

  request.database = HeaderString(request.header, "db");
  auto target = by_name.find(request.database);
  if (target == by_name.end()) {
    throw Error(ErrorCode::kNotFound, "database '" + request.database + "' is not on instance " +
                                          std::to_string(options.instance) +
                                          "; see provider.map for where each shard lives");
  }
  Hosted* hosted_db = target->second;

  if (protocol::IsWrite(request.op)) {
    if (!hosted_db->writer->TryPush(request)) {
      parked_write = std::move(request);
      parked_target = hosted_db;
    }
    return;
  }

  auto shared = std::make_shared<Request>(std::move(request));
  SubmitRead([shared, hosted_db](zmq::socket_t& out) {
    ExecuteRead(*hosted_db->db, *shared, out);
  });
}

Error Server::Impl::UnknownPeer() const {
  // The same answer whether the connection never said hello or was dropped:
  // the server does not remember the clients it dropped.
  std::string dropped;
  if (options.client_timeout.count() > 0) {
    dropped = fmt::format(", or instance {} dropped it after {:.1f} s of silence", options.instance,
                          std::chrono::duration<double>(options.client_timeout).count());
  }
  return Error(ErrorCode::kProtocol,
               "say hello first: this connection has not said hello" + dropped +
                   "; connect anew with a new client (protocol version " +
                   std::to_string(protocol::kVersion) + ")");
}

void Server::Impl::SubmitRead(ReaderPool::Task task) {
  if (!readers->TryPush(task)) parked_read = std::move(task);
}

void Server::Impl::HandleHello(Request& request) {
  const auto& header = request.header;
  const int version = header.value("version", 0);
  if (version != protocol::kVersion) {
    throw Error(ErrorCode::kProtocol,
                "client speaks protocol version " + std::to_string(version) +
                    " but this server speaks version " + std::to_string(protocol::kVersion) +
                    "; use a client and server from the same provdb release");
  }
  if (stopping) {
    throw Error(ErrorCode::kUnavailable, "instance " + std::to_string(options.instance) +
                                             " is stopping (" + stop_reason + ")");
  }

  Peer peer;
  peer.role = HeaderString(header, "role");
  peer.since = Clock::now();
  peer.last_heard = peer.since;
  if (request.route == Route::kReads) {
    // The read socket of a client that said hello on the main socket.
    if (peer.role != protocol::kRoleReader) {
      throw Error(ErrorCode::kProtocol, "only role 'reader' says hello on the read endpoint");
    }
    peers[PeerKey(request)] = peer;
    SendDirect(read_router, request.identity, protocol::OkHeader(request.id));
    return;
  }
  if (peer.role == protocol::kRoleRank) {
    peer.rank = header.value("rank", -1);
    if (peer.rank < 0) throw Error(ErrorCode::kProtocol, "a rank's hello needs its \"rank\"");
  } else if (peer.role != protocol::kRoleParameterServer && peer.role != protocol::kRoleTool) {
    throw Error(ErrorCode::kProtocol, "unknown role '" + peer.role + "' in hello");
  }

  const std::string key = PeerKey(request);
  const bool known = peers.count(key) > 0;
  peers[key] = peer;
  if (!known && peer.role == protocol::kRoleRank) ++ranks_seen;
  // Tools (status, queries) come and go often; only ranks and the parameter
  // server are worth an operator's attention.
  const auto level = peer.role == protocol::kRoleTool ? spdlog::level::debug : spdlog::level::info;
  if (!known) spdlog::log(level, "{} connected ({} clients)", DescribePeer(peer), ClientCount());

  nlohmann::json reply = protocol::OkHeader(request.id);
  reply["version"] = protocol::kVersion;
  reply["instance"] = options.instance;
  nlohmann::json names = nlohmann::json::array();
  for (const auto& h : hosted) names.push_back(h->name);
  reply["databases"] = std::move(names);
  reply["read_endpoint"] = read_endpoint;
  SendDirect(router, request.identity, reply);
}

void Server::Impl::HandleGoodbye(Request& request) {
  auto it = peers.find(PeerKey(request));
  const Peer peer = it->second;
  peers.erase(it);
  SendDirect(RouterOf(request.route), request.identity, protocol::OkHeader(request.id));
  if (peer.role == protocol::kRoleReader) return;

  const auto level = peer.role == protocol::kRoleTool ? spdlog::level::debug : spdlog::level::info;
  spdlog::log(level, "{} left ({} clients)", DescribePeer(peer), ClientCount());
  CheckAutoshutdown();
}

std::size_t Server::Impl::ClientCount() const {
  std::size_t count = 0;
  for (const auto& [key, peer] : peers) count += peer.role != protocol::kRoleReader;
  return count;
}

void Server::Impl::CheckAutoshutdown() {
  if (!options.autoshutdown || stopping || ranks_seen == 0) return;
  for (const auto& [key, peer] : peers) {
    if (peer.role == protocol::kRoleRank || peer.role == protocol::kRoleParameterServer) return;
  }
  BeginStop(vanished == 0 ? "every rank and the parameter server left"
                           : "every rank and the parameter server left, " +
                                 std::to_string(vanished) + " of them vanished");
}

std::chrono::milliseconds Server::Impl::LeaseCheckPeriod() const {
  // The idle poll timeout too: an idle instance must wake up to see that a
  // lease ran out. A quarter of the timeout keeps the lateness small.
  constexpr std::chrono::milliseconds kMaxPeriod(500);
  if (options.client_timeout.count() <= 0) return kMaxPeriod;
  return std::clamp(options.client_timeout / 4, std::chrono::milliseconds(10), kMaxPeriod);
}

void Server::Impl::ExpireLeases() {
  if (options.client_timeout.count() <= 0 || stopping) return;
  const auto now = Clock::now();
  if (parked_write || parked_read) {
    reading_since = now;
    return;
  }
  if (now < next_lease_check) return;
  next_lease_check = now + LeaseCheckPeriod();

  bool dropped = false;
  for (auto it = peers.begin(); it != peers.end();) {
    const Peer& peer = it->second;
    if (now - std::max(peer.last_heard, reading_since) < options.client_timeout) {
      ++it;
      continue;
    }
    const Peer gone = peer;
    it = peers.erase(it);
    // A reader socket goes with its client, which is logged on its own.
    if (gone.role == protocol::kRoleReader) continue;

    ++vanished;
    dropped = true;
    const auto level = gone.role == protocol::kRoleTool ? spdlog::level::debug
                                                          : spdlog::level::warn;
    spdlog::log(level,
                "{} vanished: nothing heard from it for {:.1f} s (client timeout {:.1f} s); "
                "dropped it, its acknowledged writes are committed ({} clients)",
                DescribePeer(gone), std::chrono::duration<double>(now - gone.last_heard).count(),
                std::chrono::duration<double>(options.client_timeout).count(), ClientCount());
  }
  if (dropped) CheckAutoshutdown();
}

void Server::Impl::BeginStop(const std::string& reason) {
  if (stopping) return;
  stopping = true;
  stop_reason = reason;
  spdlog::info("instance {} stopping: {}", options.instance, reason);
}

void Server::Impl::SampleRate() {
  const auto now = Clock::now();
  if (!rate_samples.empty() &&
      now - std::get<0>(rate_samples.back()) < std::chrono::seconds(1)) {
    return;
  }
  rate_samples.emplace_back(now, RecordsStored(), BytesStored());
  while (rate_samples.size() > 2 && now - std::get<0>(rate_samples[1]) >= kRateWindow) {
    rate_samples.pop_front();
  }
}

nlohmann::json Server::Impl::StatusSnapshot() {
  using std::chrono::duration;
  const auto now = Clock::now();

  nlohmann::json clients{{"rank", 0}, {"ps", 0}, {"tool", 0}};
  for (const auto& [key, peer] : peers) {
    if (peer.role != protocol::kRoleReader) clients[peer.role] = clients[peer.role].get<int>() + 1;
  }
  clients["total"] = ClientCount();
  clients["ranks_seen"] = ranks_seen;
  clients["vanished"] = vanished;

  const uint64_t records = RecordsStored();
  const uint64_t bytes = BytesStored();
  double rate = 0, byte_rate = 0;
  if (!rate_samples.empty()) {
    const auto& [t0, r0, b0] = rate_samples.front();
    const double seconds = duration<double>(now - t0).count();
    if (seconds > 0.5) {
      rate = static_cast<double>(records - r0) / seconds;
      byte_rate = static_cast<double>(bytes - b0) / seconds;
    }
  }

  nlohmann::json databases = nlohmann::json::array();
  for (const auto& h : hosted) {
    databases.push_back({{"name", h->name},
                         {"file", h->path.string()},
                         {"queue_requests", h->writer->queued_requests()},
                         {"queue_bytes", h->writer->queued_bytes()},
                         {"records_stored", h->writer->records_stored()}});
  }

  return {{"instance", options.instance},
          {"instances", options.num_instances},
          {"endpoint", endpoint},
          {"read_endpoint", read_endpoint},
          {"pid", ::getpid()},
          {"uptime_s", duration<double>(now - started).count()},
          {"stopping", stopping},
          {"clients", std::move(clients)},
          {"ingest",
           {{"records", records},
            {"bytes", bytes},
            {"records_per_s", rate},
            {"bytes_per_s", byte_rate}}},
          {"reader_queue", readers->queued()},
          {"databases", std::move(databases)}};
}

void Server::Impl::HandleStatus(Request& request) {
  // Counting records reads every database, so it runs on a reader thread.
  auto snapshot = std::make_shared<nlohmann::json>(StatusSnapshot());
  auto shared = std::make_shared<Request>(std::move(request));
  SubmitRead([this, snapshot, shared](zmq::socket_t& out) {
    try {
      for (std::size_t i = 0; i < hosted.size(); ++i) {
        nlohmann::json counts = nlohmann::json::object();
        for (const auto& name : hosted[i]->db->list_collections()) {
          counts[name] = hosted[i]->db->size(name);
        }
        (*snapshot)["databases"][i]["collections"] = std::move(counts);
      }
      nlohmann::json reply = protocol::OkHeader(shared->id);
      reply["status"] = std::move(*snapshot);
      SendReply(out, *shared, reply);
    } catch (const Error& e) {
      SendError(out, *shared, e);
    }
  });
}

void Server::Impl::Finish() {
  for (auto& h : hosted) h->writer->Join();
  readers->Join();

  std::string summary;
  for (auto& h : hosted) {
    int64_t records = 0;
    try {
      for (const auto& name : h->db->list_collections()) records += h->db->size(name);
    } catch (const Error& e) {
      spdlog::warn("cannot count the records of {}: {}", DatabaseLabel(h->name), e.what());
    }
    summary += (summary.empty() ? "" : ", ") + DatabaseLabel(h->name) + ": " +
               std::to_string(records) + " records (" +
               std::to_string(h->writer->records_stored()) + " stored by this run)";
  }

  // Closing folds each WAL back into its file; only then may clients (and
  // job scripts) take the missing address file to mean "done".
  for (auto& h : hosted) {
    h->writer.reset();
    h->db.reset();
  }
  // The map stays: it describes the layout of the files, and lets `provdb
  // stop` and `status` find the instances that are still running.
  std::error_code ec;
  fs::remove(address_file, ec);
  address_file.clear();

  spdlog::info("instance {} stopped ({}) after {:.1f} s: {}", options.instance, stop_reason,
               std::chrono::duration<double>(Clock::now() - started).count(), summary);
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = std::move(options);
  if (s.options.instance < 0 || s.options.instance >= s.options.num_instances) {
    throw Error(ErrorCode::kInvalidArgument,
                "instance " + std::to_string(s.options.instance) + " is outside 0.." +
                    std::to_string(s.options.num_instances - 1));
  }
  if (s.options.port < 0 || s.options.port > 65535) {
    throw Error(ErrorCode::kInvalidArgument,
                "--port " + std::to_string(s.options.port) +
                    " is not a TCP port; give 1 to 65535, or 0 or no --port for a free port");
  }
  s.map = protocol::ShardMap::Build(s.options.num_shards, s.options.num_instances);

  // Listening first: a port that is taken fails the start before any file
  // is created.
  s.Bind();

  std::error_code ec;
  fs::create_directories(s.options.dir, ec);
  if (ec) {
    throw Error(ErrorCode::kStorage,
                "cannot create directory " + s.options.dir.string() + ": " + ec.message());
  }
  // Before anything in the directory is touched: a second instance with
  // the same index would serve the same files and remove the first one's
  // address file when it stops.
  s.LockInstance();
  s.CheckEarlierRun();

  // A file left by an instance that was killed must not attract clients.
  fs::remove(s.options.dir / protocol::AddressFileName(s.options.instance), ec);
  if (s.options.instance == 0) fs::remove(s.options.dir / std::string(protocol::kMapFileName), ec);

  if (::pipe2(s.wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    throw Error(ErrorCode::kInternal, "cannot create the server's wake-up pipe");
  }

  s.OpenDatabases();
  for (auto& h : s.hosted) {
    h->writer = std::make_unique<Writer>(h->name, *h->db, s.context, s.options.queue_bytes);
  }
  s.readers = std::make_unique<ReaderPool>(std::max<std::size_t>(1, s.options.reader_threads),
                                           256, s.context);
  s.Announce();
}

Server::~Server() {
  // Workers must be gone before the databases and sockets they use.
  if (impl_ && !impl_->workers_closed) {
    for (auto& h : impl_->hosted) {
      if (h->writer) h->writer->Close();
    }
    if (impl_->readers) impl_->readers->Close();
  }
  if (impl_) {
    for (auto& h : impl_->hosted) h->writer.reset();
    impl_->readers.reset();
  }
}

const std::string& Server::endpoint() const { return impl_->endpoint; }

std::string Server::Run() { return impl_->Run(); }

void Server::RequestStop(const char* reason) {
  impl_->requested_stop.store(reason);
  const char byte = 1;
  [[maybe_unused]] auto written = ::write(impl_->wake_pipe[1], &byte, 1);
}

namespace {

std::atomic<Server*> g_signal_target{nullptr};

void OnStopSignal(int signo) {
  if (Server* server = g_signal_target.load()) {
    server->RequestStop(signo == SIGTERM ? "SIGTERM received" : "SIGINT received");
  }
}

}  // namespace

void InstallStopSignals(Server* server) {
  g_signal_target.store(server);

  struct sigaction action {};
  action.sa_handler = server != nullptr ? OnStopSignal : SIG_DFL;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

}  // namespace provdb::server
