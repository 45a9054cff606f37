// The background thread of a client connection and the hand-over of requests
// from API threads to it.
#include "client/connection.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <future>

#include <zmq_addon.hpp>

#include "common/error.hpp"
#include "protocol/protocol.hpp"

namespace provdb::client {

using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kIdlePoll = std::chrono::milliseconds(100);
constexpr auto kGoodbyeTimeout = std::chrono::milliseconds(5000);

// Watches `socket` for lost connections; returns the socket the events come
// on. Must run on the thread that owns `socket`.
std::unique_ptr<zmq::socket_t> WatchDisconnects(zmq::context_t& context, zmq::socket_t& socket) {
  static std::atomic<uint64_t> counter{0};
  const std::string address = "inproc://provdb-client-monitor-" + std::to_string(counter++);
  if (zmq_socket_monitor(socket.handle(), address.c_str(), ZMQ_EVENT_DISCONNECTED) != 0) {
    throw Error(ErrorCode::kInternal, "cannot monitor a client socket: " +
                                          std::string(zmq_strerror(zmq_errno())));
  }
  auto monitor = std::make_unique<zmq::socket_t>(context, zmq::socket_type::pair);
  monitor->connect(address);
  return monitor;
}

// How long the probe below waits for a host that neither accepts nor refuses.
constexpr auto kProbeTimeout = std::chrono::milliseconds(1000);

// Whether a plain TCP connection to the host and port of a tcp:// endpoint
// is refused, meaning nothing listens there. ZeroMQ retries refused
// connections silently, so without this a dead server costs the whole
// connect timeout. Anything else (accepted, slow, unreachable, another
// transport) is not a refusal: the hello decides.
bool ConnectionRefused(const std::string& endpoint, std::chrono::milliseconds timeout) {
  constexpr std::string_view kTcp = "tcp://";
  const auto colon = endpoint.rfind(':');
  if (!endpoint.starts_with(kTcp) || colon == std::string::npos || colon < kTcp.size()) {
    return false;
  }
  std::string host = endpoint.substr(kTcp.size(), colon - kTcp.size());
  const std::string port = endpoint.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }

  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return false;
  bool refused = false;
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    if (::connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
      int error = errno;
      pollfd item{fd, POLLOUT, 0};
      if (error == EINPROGRESS && ::poll(&item, 1, static_cast<int>(timeout.count())) == 1) {
        socklen_t size = sizeof(error);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
      }
      refused = error == ECONNREFUSED;
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return refused;
}

bool IsReadRequest(const nlohmann::json& header) {
  auto op = header.find("op");
  if (op == header.end() || !op->is_string()) return false;
  const auto parsed = protocol::ParseOp(op->get<std::string>());
  return parsed && (protocol::IsRead(*parsed) || *parsed == protocol::Op::kStatus);
}

}  // namespace

void Window::Acquire() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return in_flight_ < capacity_; });
  ++in_flight_;
}

void Window::Release() {
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
  }
  changed_.notify_all();
}

void Window::WaitIdle() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return in_flight_ == 0; });
}

Connection::Connection(zmq::context_t& context, std::string endpoint, std::string origin,
                       Hello hello, const ClientOptions& options,
                       std::chrono::milliseconds connect_timeout, std::shared_ptr<Window> window)
    : endpoint_(std::move(endpoint)),
      origin_(std::move(origin)),
      options_(options),
      request_timeout_(options.request_timeout),
      window_(std::move(window)),
      socket_(context, zmq::socket_type::dealer) {
  // Requests in flight are bounded by the window, so ZeroMQ's own queues need
  // no limit of their own; replies may be large (a whole collection).
  auto open = [&](zmq::socket_t& socket, const std::string& address) {
    socket.set(zmq::sockopt::sndhwm, 0);
    socket.set(zmq::sockopt::rcvhwm, 0);
    socket.set(zmq::sockopt::linger, 200);
    try {
      socket.connect(address);
    } catch (const zmq::error_t& e) {
      throw Error(ErrorCode::kUnavailable, "cannot connect to '" + address + "' (from " +
                                               origin_ + "): " + e.what());
    }
  };
  const auto deadline = Clock::now() + connect_timeout;
  auto left = [&] {
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  };

  if (ConnectionRefused(endpoint_, std::min(left(), kProbeTimeout))) {
    const std::string dir = std::filesystem::path(origin_).parent_path().string();
    throw Error(ErrorCode::kUnavailable,
                "nothing listens at " + endpoint_ + " (address file " + origin_ +
                    "): the server is not running; start it with provdb serve --dir " + dir +
                    ", or remove the stale " + origin_ + " if it was killed");
  }

  // The hellos run here, before the background thread exists, so that the
  // sockets pass to it fully set up.
  open(socket_, endpoint_);
  monitor_ = WatchDisconnects(context, socket_);
  nlohmann::json hello_header{
      {"op", "hello"}, {"version", protocol::kVersion}, {"role", hello.role}};
  if (hello.role == protocol::kRoleRank) hello_header["rank"] = hello.rank;
  const nlohmann::json reply = Handshake(socket_, std::move(hello_header), left());

  const std::string read_endpoint = reply.value("read_endpoint", std::string());
  if (!read_endpoint.empty()) {
    read_socket_ = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
    open(*read_socket_, read_endpoint);
    read_monitor_ = WatchDisconnects(context, *read_socket_);
    Handshake(*read_socket_,
              nlohmann::json{{"op", "hello"},
                             {"version", protocol::kVersion},
                             {"role", protocol::kRoleReader}},
              left());
  }

  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw Error(ErrorCode::kInternal, "cannot create an eventfd");
  last_sent_ = last_read_sent_ = Clock::now();
  thread_ = std::thread([this] { Run(); });
}

nlohmann::json Connection::Handshake(zmq::socket_t& socket, nlohmann::json header,
                                     std::chrono::milliseconds timeout) {
  const uint64_t id = next_id_.fetch_add(1);
  header["id"] = id;
  const std::string text = protocol::DumpHeader(header);
  socket.send(zmq::buffer(text), zmq::send_flags::none);

  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (wait.count() > 0) {
      try {
        zmq::poll(&item, 1, wait);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        continue;
      }
    }
    if (!(item.revents & ZMQ_POLLIN)) {
      throw Error(ErrorCode::kTimeout,
                  "no reply from " + endpoint_ + " (address file " + origin_ + ") within " +
                      std::to_string(timeout.count()) +
                      " ms to hello; the server may be starting, stopped or unreachable");
    }

    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(socket, std::back_inserter(frames))) continue;
    auto reply = nlohmann::json::parse(frames.at(0).to_string_view(), nullptr, false);
    if (!reply.is_object() || reply.value("id", uint64_t{0}) != id) continue;
    if (!reply.value("ok", false)) throw protocol::ErrorFromHeader(reply);
    return reply;
  }
}

Connection::~Connection() {
  Close();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Connection::Submit(nlohmann::json header, std::vector<zmq::message_t> payload,
                        std::string what, Completion done) {
  {
    std::lock_guard lock(mutex_);
    if (closing_) {
      throw Error(ErrorCode::kUnavailable,
                  "the connection to " + endpoint_ + " is closed; cannot send " + what);
    }
  }

  window_->Acquire();
  auto window = window_;
  Completion release = [window, done = std::move(done)](Reply* reply, std::exception_ptr error) {
    done(reply, error);
    window->Release();
  };
  const bool to_reads = read_socket_ != nullptr && IsReadRequest(header);
  Enqueue(std::move(header), std::move(payload), std::move(what), std::move(release),
          request_timeout_, to_reads);
}

Reply Connection::Call(nlohmann::json header, std::vector<zmq::message_t> payload,
                       std::string what) {
  auto promise = std::make_shared<std::promise<Reply>>();
  auto future = promise->get_future();
  Submit(std::move(header), std::move(payload), std::move(what),
         [promise](Reply* reply, std::exception_ptr error) {
           if (error) {
             promise->set_exception(error);
           } else {
             promise->set_value(std::move(*reply));
           }
         });
  return future.get();
}

Reply Connection::CallWithTimeout(nlohmann::json header, std::string what,
                                  std::chrono::milliseconds timeout, bool to_reads) {
  auto promise = std::make_shared<std::promise<Reply>>();
  auto future = promise->get_future();
  Enqueue(std::move(header), {}, std::move(what),
          [promise](Reply* reply, std::exception_ptr error) {
            if (error) {
              promise->set_exception(error);
            } else {
              promise->set_value(std::move(*reply));
            }
          },
          timeout, to_reads);
  return future.get();
}

void Connection::Enqueue(nlohmann::json header, std::vector<zmq::message_t> payload,
                         std::string what, Completion done, std::chrono::milliseconds timeout,
                         bool to_reads) {
  Outgoing out;
  out.id = next_id_.fetch_add(1, std::memory_order_relaxed);
  out.to_reads = to_reads;
  header["id"] = out.id;
  const std::string text = protocol::DumpHeader(header);
  out.frames.reserve(payload.size() + 1);
  out.frames.emplace_back(text.data(), text.size());
  for (auto& frame : payload) out.frames.push_back(std::move(frame));
  out.what = std::move(what);
  out.done = std::move(done);
  out.timeout = timeout;
  out.deadline = Clock::now() + timeout;

  {
    std::lock_guard lock(mutex_);
    if (stop_) {
      // Close() has ended the background thread's intake: fail right here.
      auto error = std::make_exception_ptr(Error(
          ErrorCode::kUnavailable, "the connection to " + endpoint_ + " is closed"));
      out.done(nullptr, error);
      return;
    }
    queue_.push_back(std::move(out));
  }
  Wake();
}

void Connection::Wake() {
  // One eventfd write per wake-up is enough; the background thread clears
  // the flag before it drains the queue, so no request is left behind.
  if (!wake_pending_.exchange(true)) {
    const uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wake_fd_, &one, sizeof(one));
  }
}

void Connection::Close() {
  {
    std::lock_guard lock(mutex_);
    if (closing_) return;
    closing_ = true;
  }

  if (!server_stopping_ && thread_.joinable()) {
    const auto timeout = std::min<std::chrono::milliseconds>(request_timeout_, kGoodbyeTimeout);
    try {
      const nlohmann::json goodbye{{"op", "goodbye"}};
      if (read_socket_) CallWithTimeout(goodbye, "goodbye", timeout, /*to_reads=*/true);
      CallWithTimeout(goodbye, "goodbye", timeout);
    } catch (const Error&) {
      // A server that is gone or stopping has nobody to say goodbye to.
    }
  }

  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  Wake();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();

  // The background thread is gone, so this thread may touch its sockets.
  zmq_socket_monitor(socket_.handle(), nullptr, 0);
  if (read_socket_) zmq_socket_monitor(read_socket_->handle(), nullptr, 0);
}

void Connection::Run() {
  while (true) {
    bool stopping = false;
    {
      std::lock_guard lock(mutex_);
      for (auto& out : queue_) unsent_.push_back(std::move(out));
      queue_.clear();
      stopping = stop_;
    }
    SendQueued();
    KeepAlive();

    if (stopping) {
      FailAll("the connection to " + endpoint_ + " was closed before the reply came");
      break;
    }

    auto wait = kIdlePoll;
    if (options_.heartbeat_interval.count() > 0) {
      wait = std::min(wait, options_.heartbeat_interval);
    }
    if (!in_flight_.empty()) {
      const auto first = std::min_element(in_flight_.begin(), in_flight_.end(),
                                          [](const auto& a, const auto& b) {
                                            return a.second.deadline < b.second.deadline;
                                          });
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          first->second.deadline - Clock::now());
      wait = std::clamp(left + std::chrono::milliseconds(1), std::chrono::milliseconds(0),
                        kIdlePoll);
    }
    const short socket_events = ZMQ_POLLIN | (unsent_.empty() ? 0 : ZMQ_POLLOUT);
    zmq::pollitem_t items[] = {
        {nullptr, wake_fd_, ZMQ_POLLIN, 0},
        {monitor_->handle(), 0, ZMQ_POLLIN, 0},
        {socket_.handle(), 0, socket_events, 0},
        {read_socket_ ? read_socket_->handle() : nullptr, 0, socket_events, 0},
        {read_monitor_ ? read_monitor_->handle() : nullptr, 0, ZMQ_POLLIN, 0},
    };
    try {
      zmq::poll(items, read_socket_ ? 5 : 3, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;  // a signal handled elsewhere in the process
      continue;
    }

    if (items[0].revents & ZMQ_POLLIN) {
      uint64_t count = 0;
      [[maybe_unused]] auto got = ::read(wake_fd_, &count, sizeof(count));
      wake_pending_.store(false);
    }
    ReceiveReplies(socket_);
    if (read_socket_) ReceiveReplies(*read_socket_);
    if (items[1].revents & ZMQ_POLLIN) ConnectionLost(*monitor_, false);
    if (read_socket_ && (items[4].revents & ZMQ_POLLIN)) ConnectionLost(*read_monitor_, true);
    ExpireRequests();
  }
}

void Connection::SendQueued() {
  while (!unsent_.empty()) {
    Outgoing& out = unsent_.front();
    zmq::socket_t& socket = out.to_reads ? *read_socket_ : socket_;
    if (!zmq::send_multipart(socket, out.frames, zmq::send_flags::dontwait)) return;

    in_flight_.emplace(out.id, InFlight{out.to_reads, out.deadline, std::move(out.what),
                                        std::move(out.done), out.timeout});
    (out.to_reads ? last_read_sent_ : last_sent_) = Clock::now();
    unsent_.pop_front();
  }
}

void Connection::KeepAlive() {
  // A server that is stopping or gone has no lease to keep; pings to it would
  // only pile up in ZeroMQ's queue until it reconnects.
  const auto interval = options_.heartbeat_interval;
  if (interval.count() <= 0 || server_stopping_) return;

  const auto now = Clock::now();
  auto ping = [&](zmq::socket_t& socket, Clock::time_point& last_sent) {
    if (now - last_sent < interval) return;
    const std::string text =
        protocol::DumpHeader({{"id", next_id_.fetch_add(1)}, {"op", "ping"}});
    // A ping ZeroMQ cannot take now is simply skipped: the next one is due
    // one interval later, far within the server's timeout.
    [[maybe_unused]] auto sent = socket.send(zmq::buffer(text), zmq::send_flags::dontwait);
    last_sent = now;
  };
  ping(socket_, last_sent_);
  if (read_socket_) ping(*read_socket_, last_read_sent_);
}

void Connection::ReceiveReplies(zmq::socket_t& socket) {
  while (true) {
    Reply reply;
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      return;
    }
    if (frames.empty()) continue;

    reply.header = nlohmann::json::parse(frames[0].data<char>(),
                                         frames[0].data<char>() + frames[0].size(), nullptr,
                                         /*allow_exceptions=*/false);
    if (!reply.header.is_object()) continue;
    const uint64_t id = reply.header.value("id", uint64_t{0});
    auto it = in_flight_.find(id);
    if (it == in_flight_.end()) continue;  // a reply that came after its timeout

    InFlight request = std::move(it->second);
    in_flight_.erase(it);
    for (std::size_t i = 1; i < frames.size(); ++i) reply.frames.push_back(std::move(frames[i]));

    if (reply.header.value("ok", false)) {
      request.done(&reply, nullptr);
      continue;
    }
    Error error = protocol::ErrorFromHeader(reply.header);
    // A stopping server refuses everything, a goodbye included.
    if (error.code() == ErrorCode::kUnavailable) server_stopping_ = true;
    request.done(nullptr, std::make_exception_ptr(error));
  }
}

void Connection::ExpireRequests() {
  const auto now = Clock::now();

  // A request ZeroMQ would not take (no connection to the server) times out
  // like one that was sent.
  for (auto it = unsent_.begin(); it != unsent_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    Outgoing request = std::move(*it);
    it = unsent_.erase(it);
    request.done(nullptr, std::make_exception_ptr(Error(
                              ErrorCode::kTimeout,
                              "could not send " + request.what + " to " + endpoint_ +
                                  " (address file " + origin_ + ") within " +
                                  std::to_string(request.timeout.count()) +
                                  " ms; the server is unreachable or gone")));
  }

  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    InFlight request = std::move(it->second);
    it = in_flight_.erase(it);
    request.done(nullptr,
                 std::make_exception_ptr(Error(
                     ErrorCode::kTimeout,
                     "no reply from " + endpoint_ + " (address file " + origin_ + ") within " +
                         std::to_string(request.timeout.count()) + " ms to " + request.what +
                         "; the server may be overloaded, stopped or unreachable")));
  }
}

void Connection::ConnectionLost(zmq::socket_t& monitor, bool reads) {
  // Each event is two frames: event id and value, then the endpoint.
  bool lost = false;
  while (true) {
    std::vector<zmq::message_t> event;
    if (!zmq::recv_multipart(monitor, std::back_inserter(event), zmq::recv_flags::dontwait)) {
      break;
    }
    lost = true;
  }
  if (!lost) return;

  // Replies that arrived before the connection dropped are still queued.
  ReceiveReplies(reads ? *read_socket_ : socket_);
  if (!reads) server_stopping_ = true;  // nobody left to say goodbye to

  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (it->second.to_reads != reads) {
      ++it;
      continue;
    }
    InFlight request = std::move(it->second);
    it = in_flight_.erase(it);
    request.done(nullptr, std::make_exception_ptr(Error(
                              ErrorCode::kUnavailable,
                              "lost the connection to " + endpoint_ + " (address file " +
                                  origin_ + ") waiting for the reply to " + request.what +
                                  "; the server stopped or failed, and the request may or "
                                  "may not have been applied")));
  }
}

void Connection::FailAll(const std::string& why) {
  auto error = std::make_exception_ptr(Error(ErrorCode::kUnavailable, why));
  for (auto& [id, request] : in_flight_) request.done(nullptr, error);
  in_flight_.clear();
  for (auto& out : unsent_) out.done(nullptr, error);
  unsent_.clear();
}

}  // namespace provdb::client
