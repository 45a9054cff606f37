// One provdb server instance: hosts its block of shards (and the global
// database on instance 0), listens on a ZeroMQ ROUTER socket, and writes its
// address file once every database is open.
//
// Threads: the thread calling Run() is the IO thread; it alone owns the
// ROUTER socket, the client table and the stop decision. Each database has a
// writer thread (server/writer.hpp); reads run on a reader pool
// (server/reader_pool.hpp); both send replies back to the IO thread over an
// inproc socket. RequestStop() may be called from any thread and from a
// signal handler.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "storage/database.hpp"

namespace provdb::server {

struct ServerOptions {
  std::filesystem::path dir;
  int num_shards = 1;
  int instance = 0;
  int num_instances = 1;
  std::string address = "127.0.0.1";
  int port = 0;  // 0: a free port chosen by the system
  storage::Durability durability = storage::Durability::kFast;
  bool autoshutdown = true;
  std::size_t reader_threads = 2;
  // Bytes of write requests queued per database before the IO thread stops
  // reading new requests (backpressure on the clients).
  std::size_t queue_bytes = 16u << 20;
  // A client not heard from for this long (clients send keep-alives while
  // idle) is dropped as vanished, so that a killed rank cannot hold off
  // autoshutdown. 0: never drop.
  std::chrono::milliseconds client_timeout{10'000};
};

// Instance index and count from the environment of an MPI launcher or Slurm
// (Open MPI, PMIx, PMI, Slurm, in that order). Returns false when none is set.
bool InstanceFromEnvironment(int& instance, int& num_instances);

class Server {
 public:
  // Opens the databases, binds the socket and writes the address files.
  // Throws provdb::Error when any of it fails; nothing is left listening.
  explicit Server(ServerOptions options);
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The endpoint written to the address file.
  const std::string& endpoint() const;

  // Serves until stopped, then stops gracefully: every queued write is
  // committed and acknowledged, the databases are closed and the address
  // files removed. Returns the reason for stopping.
  std::string Run();

  // Asks Run() to stop. Async-signal-safe; `reason` must be a string
  // literal.
  void RequestStop(const char* reason);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Makes SIGTERM and SIGINT call server->RequestStop(), and ignores SIGPIPE.
// Pass nullptr to detach the handlers from a server that is going away.
void InstallStopSignals(Server* server);

}  // namespace provdb::server
