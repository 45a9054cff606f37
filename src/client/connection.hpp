// One client connection to one server instance: DEALER sockets owned by a
// background thread, which sends the requests that API threads queue and
// matches replies to them by request id. Reads go to the instance's read
// endpoint (told at hello), so that they are not held up when the instance
// holds back writes; everything else goes to the main endpoint.
//
// Threads: Submit, Call and Close may be called from any thread. An API
// thread builds a request's frames itself, puts them on a mutex-protected
// queue and wakes the background thread through an eventfd; only the
// background thread touches the socket and the table of requests in flight,
// and it runs the completion callbacks. It also sends the keep-alives that
// hold the connection's lease on the server while the client is idle. A
// Window shared by all connections of a client bounds the requests in flight.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "client/client.hpp"

namespace provdb::client {

// A bounded count of requests in flight: Acquire waits while it is full.
class Window {
 public:
  explicit Window(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  void Acquire();
  void Release();
  // Waits until nothing is in flight.
  void WaitIdle();

  std::atomic<std::size_t> failed_sends{0};

 private:
  const std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t in_flight_ = 0;
};

struct Reply {
  nlohmann::json header;
  std::vector<zmq::message_t> frames;
};

// Runs on the background thread with the reply, or with the error (a
// provdb::Error: the server's, a timeout, or the connection closing).
using Completion = std::function<void(Reply* reply, std::exception_ptr error)>;

struct Hello {
  std::string role;  // protocol::kRoleRank, kRoleParameterServer or kRoleTool
  int rank = -1;
};

class Connection {
 public:
  // Connects to `endpoint` (read from `origin`, the address file) and says
  // hello, waiting at most `connect_timeout` for the answer.
  Connection(zmq::context_t& context, std::string endpoint, std::string origin, Hello hello,
             const ClientOptions& options, std::chrono::milliseconds connect_timeout,
             std::shared_ptr<Window> window);
  ~Connection();  // Close()

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  const ClientOptions& options() const { return options_; }
  const std::shared_ptr<Window>& window() const { return window_; }

  // Queues a request; `what` describes it in timeout messages ("store of 10
  // documents into 0/anomalies"). Waits for room in the window. `done` runs
  // exactly once. Throws Error(kUnavailable) after Close().
  void Submit(nlohmann::json header, std::vector<zmq::message_t> payload, std::string what,
              Completion done);
  // Submits and waits for the reply; rethrows its error.
  Reply Call(nlohmann::json header, std::vector<zmq::message_t> payload, std::string what);

  // Marks the server as stopping: Close() then skips its goodbye.
  void ServerStopping() { server_stopping_ = true; }

  // Says goodbye (unless the server is stopping), fails what is still in
  // flight with kUnavailable and ends the background thread. Idempotent.
  void Close();

 private:
  struct Outgoing {
    uint64_t id;
    bool to_reads = false;  // sent on the read socket
    std::vector<zmq::message_t> frames;  // header, then payload
    std::string what;
    Completion done;
    std::chrono::milliseconds timeout;
    std::chrono::steady_clock::time_point deadline;
  };
  struct InFlight {
    bool to_reads = false;
    std::chrono::steady_clock::time_point deadline;
    std::string what;
    Completion done;
    std::chrono::milliseconds timeout;
  };

  void Enqueue(nlohmann::json header, std::vector<zmq::message_t> payload, std::string what,
               Completion done, std::chrono::milliseconds timeout, bool to_reads);
  Reply CallWithTimeout(nlohmann::json header, std::string what,
                        std::chrono::milliseconds timeout, bool to_reads = false);
  // Before the background thread starts: one request and its reply on
  // `socket`, waiting at most `timeout`.
  nlohmann::json Handshake(zmq::socket_t& socket, nlohmann::json header,
                           std::chrono::milliseconds timeout);
  void Run();
  void SendQueued();
  void ReceiveReplies(zmq::socket_t& socket);
  void ExpireRequests();
  // Sends a ping on each socket that has sent nothing for the heartbeat
  // interval.
  void KeepAlive();
  // The socket lost its TCP connection: the server cannot answer what was
  // sent on it, so those requests fail now rather than at their timeout.
  void ConnectionLost(zmq::socket_t& monitor, bool reads);
  void FailAll(const std::string& why);
  void Wake();

  const std::string endpoint_;
  const std::string origin_;
  const ClientOptions options_;
  const std::chrono::milliseconds request_timeout_;
  std::shared_ptr<Window> window_;

  zmq::socket_t socket_;
  std::unique_ptr<zmq::socket_t> read_socket_;  // null when the server has none
  // Disconnect events of socket_ and read_socket_ (ZeroMQ socket monitors).
  std::unique_ptr<zmq::socket_t> monitor_;
  std::unique_ptr<zmq::socket_t> read_monitor_;
  int wake_fd_ = -1;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<bool> server_stopping_{false};

  std::mutex mutex_;
  std::deque<Outgoing> queue_;
  bool closing_ = false;  // no more submissions
  bool stop_ = false;     // background thread: leave once the queue is sent
  std::atomic<bool> wake_pending_{false};

  // Background thread only.
  std::deque<Outgoing> unsent_;  // taken from queue_, not yet accepted by ZeroMQ
  std::map<uint64_t, InFlight> in_flight_;
  std::chrono::steady_clock::time_point last_sent_;       // on socket_
  std::chrono::steady_clock::time_point last_read_sent_;  // on read_socket_

  std::thread thread_;
};

}  // namespace provdb::client
